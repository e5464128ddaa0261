import { verifyAuditLog } from '../../audit/verify.js';
import { loadConfigFor, type GlobalOptions } from '../globals.js';
import type { Io } from '../io.js';
import { printJson } from '../render/format.js';

export async function auditVerifyCommand(globals: GlobalOptions, io: Io): Promise<number> {
  const config = await loadConfigFor(globals, { mustExist: false });
  const result = await verifyAuditLog(config.auditPath);
  if (io.json) printJson(io.out, { file: config.auditPath, ...result });
  else if (result.ok) io.out(`${io.color.green('✔')} ${config.auditPath}: ${result.entries} entries, chain intact${result.head ? ` (head ${result.head.slice(0, 16)})` : ''}`);
  else io.err(`${io.color.red('✘')} ${config.auditPath}: line ${result.line}: ${result.problem}`);
  return result.ok ? 0 : 3;
}
