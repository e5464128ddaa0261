import { findAuditGaps } from '../../audit/cross-check.js';
import { verifyAuditLog } from '../../audit/verify.js';
import { ExitCode, isProvkeyError, mostSerious } from '../../core/errors.js';
import type { KeyRecord } from '../../core/model.js';
import { withSession, type GlobalOptions } from '../globals.js';
import type { Io } from '../io.js';
import { printJson } from '../render/format.js';

/**
 * `audit verify`: the hash chain (no line edited, inserted, removed or reordered), then the
 * log against the embedded store it sits next to (no lines cut from its end, not replaced).
 */
export async function auditVerifyCommand(globals: GlobalOptions, io: Io): Promise<number> {
  return withSession(
    globals,
    io,
    async (session) => {
      const file = session.config.auditPath;
      const chain = await verifyAuditLog(file);
      const records: KeyRecord[] = [];
      const skipped: { key: string; message: string; exitCode: ExitCode }[] = [];
      for (const key of Object.values(session.config.keys)) {
        if (session.config.stores[key.storeName]?.type !== 'file') continue;
        try {
          const record = await (await session.storeFor(key)).read(key.name);
          if (record) records.push(record);
        } catch (error) {
          if (!isProvkeyError(error)) throw error;
          skipped.push({ key: key.name, message: error.message, exitCode: error.exitCode });
        }
      }
      const gaps = chain.ok ? findAuditGaps(await session.audit.readAll(), records) : [];
      // Checking nothing is never success: an empty or missing log with nothing in the store to
      // hold it against proves nothing, and a key the store would not open was not checked.
      const nothingChecked = chain.ok && chain.entries === 0 && records.length === 0;
      const ok = chain.ok && gaps.length === 0 && skipped.length === 0 && !nothingChecked;
      const exitCode = verifyExitCode({ broken: !chain.ok || gaps.length > 0, skipped: skipped.map((s) => s.exitCode), nothingChecked });
      if (io.json) {
        printJson(io.out, { file, ...chain, ok, exitCode, gaps, checkedKeys: records.map((r) => r.key), skipped: skipped.map((s) => `${s.key} (${s.message})`), nothingChecked });
      } else if (!chain.ok) {
        io.err(`${io.color.red('✘')} ${file}: line ${chain.line}: ${chain.problem}`);
      } else if (gaps.length > 0) {
        for (const gap of gaps) io.err(`${io.color.red('✘')} ${file}: ${gap.problem}`);
      } else if (nothingChecked) {
        io.err(`${io.color.red('✘')} ${file}: no audit entries and no key in the embedded store: nothing was verified`);
      } else if (skipped.length > 0) {
        io.err(`${io.color.red('✘')} ${file}: the chain of ${chain.entries} entries holds, but it could not be checked against the store for ${skipped.length} key(s)`);
      } else {
        io.out(`${io.color.green('✔')} ${file}: ${chain.entries} entries, chain intact${chain.head ? ` (head ${chain.head.slice(0, 16)})` : ''}; consistent with ${records.length} key(s) in the embedded store`);
      }
      if (!io.json) for (const s of skipped) io.err(`${io.color.red('✘')} not checked against the store: ${s.key} (${s.message})`);
      return exitCode;
    },
  );
}

/**
 * A broken chain or a gap needs a human (3); a key the store would not open ends with that
 * store's own code (a wrong passphrase: 6), never a ✔; nothing checked at all is a failure (1).
 */
function verifyExitCode(found: { broken: boolean; skipped: ExitCode[]; nothingChecked: boolean }): ExitCode {
  if (found.broken) return ExitCode.needsHuman;
  if (found.skipped.length > 0) return found.skipped.reduce(mostSerious, ExitCode.ok) || ExitCode.failed;
  return found.nothingChecked ? ExitCode.failed : ExitCode.ok;
}
