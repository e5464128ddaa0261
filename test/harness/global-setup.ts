/**
 * Runs once before the whole suite: makes sure the real servers are installed, so that a
 * fresh machine's first `npm test` installs slapd and builds OpenBao (minutes, once) here,
 * with no test hook timeout racing it. Each test file still starts its own instances.
 */
import { ensureOpenBao } from './servers/openbao.ts';
import { ensureSlapd } from './servers/slapd.ts';
import { ensureDirectoryTemplates } from './servers/directory-templates.ts';

export default async function setup(): Promise<void> {
  const started = Date.now();
  await ensureSlapd();
  await ensureOpenBao();
  await ensureDirectoryTemplates();
  const seconds = (Date.now() - started) / 1000;
  if (seconds > 5) process.stderr.write(`[harness] real servers installed in ${seconds.toFixed(0)} s (cached for later runs)\n`);
}
