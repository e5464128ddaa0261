import { findAuditGaps } from '../../audit/cross-check.js';
import { verifyAuditLog } from '../../audit/verify.js';
import { isProvkeyError } from '../../core/errors.js';
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
      const skipped: string[] = [];
      for (const key of Object.values(session.config.keys)) {
        if (session.config.stores[key.storeName]?.type !== 'file') continue;
        try {
          const record = await (await session.storeFor(key)).read(key.name);
          if (record) records.push(record);
        } catch (error) {
          if (!isProvkeyError(error)) throw error;
          skipped.push(`${key.name} (${error.message})`);
        }
      }
      const gaps = chain.ok ? findAuditGaps(await session.audit.readAll(), records) : [];
      const ok = chain.ok && gaps.length === 0;
      if (io.json) {
        printJson(io.out, { file, ...chain, ok, gaps, checkedKeys: records.map((r) => r.key), skipped });
      } else if (!chain.ok) {
        io.err(`${io.color.red('✘')} ${file}: line ${chain.line}: ${chain.problem}`);
      } else if (gaps.length > 0) {
        for (const gap of gaps) io.err(`${io.color.red('✘')} ${file}: ${gap.problem}`);
      } else {
        io.out(`${io.color.green('✔')} ${file}: ${chain.entries} entries, chain intact${chain.head ? ` (head ${chain.head.slice(0, 16)})` : ''}; consistent with ${records.length} key(s) in the embedded store`);
      }
      for (const key of skipped) io.err(`${io.color.yellow('!')} not checked against the store: ${key}`);
      return ok ? 0 : 3;
    },
    { mustExist: false, writesState: false },
  );
}
