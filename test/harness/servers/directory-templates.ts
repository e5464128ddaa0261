/** Samba AD and 389-DS: installed and their templates built once, before any test file starts. */
import { ensureDirsrvTemplate } from './dirsrv.ts';
import { ensureSambaTemplate } from './samba.ts';

export async function ensureDirectoryTemplates(): Promise<void> {
  await ensureSambaTemplate();
  await ensureDirsrvTemplate();
}
