import { findAuditGaps } from '../../audit/cross-check.js';
import { generationProblem, type StoreGeneration } from '../../audit/generation.js';
import { verifyAuditLog } from '../../audit/verify.js';
import { ExitCode, isProvkeyError, mostSerious, UsageError } from '../../core/errors.js';
import { confirmDestructive } from '../confirm.js';
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
      const records: KeyRecord[] = [];
      const skipped: { what: string; message: string; exitCode: ExitCode }[] = [];
      // The chain key and every embedded store's generation (replay detection, audit/generation.ts).
      const key = await session.auditChainKey().catch(() => undefined);
      const stores: StoreGeneration[] = [];
      for (const [name, config] of Object.entries(session.config.stores)) {
        if (config.type !== 'file') continue;
        try {
          const state = await (await session.storeNamed(name)).generationState?.();
          if (state) stores.push(state);
        } catch (error) {
          if (!isProvkeyError(error)) throw error;
          skipped.push({ what: `store ${name}`, message: error.message, exitCode: error.exitCode });
        }
      }
      const chain = await verifyAuditLog(file, {
        ...(key ? { key } : { keyUnavailable: session.auditKeyUnavailable() ?? 'the default store cannot be opened' }),
        stores,
        ...(session.config.auditAnchor ? { anchor: session.config.auditAnchor } : {}),
      });
      for (const key of Object.values(session.config.keys)) {
        if (session.config.stores[key.storeName]?.type !== 'file') continue;
        try {
          const record = await (await session.storeFor(key)).read(key.name);
          if (record) records.push(record);
        } catch (error) {
          if (!isProvkeyError(error)) throw error;
          skipped.push({ what: key.name, message: error.message, exitCode: error.exitCode });
        }
      }
      const gaps = chain.ok ? findAuditGaps(await session.audit.readAll(), records) : [];
      // Checking nothing is never success: an empty or missing log with nothing in the store to
      // hold it against proves nothing; a store or key that would not open, or lines that could
      // not be authenticated (chain.notChecked), were not checked. Only a full check gets a ✔.
      const nothingChecked = chain.ok && chain.entries === 0 && records.length === 0;
      const broken = chain.problem !== undefined || !chain.ok || gaps.length > 0;
      const exitCode = verifyExitCode({ broken, skipped: skipped.map((s) => s.exitCode), unchecked: nothingChecked || !chain.checked });
      const ok = exitCode === ExitCode.ok;
      if (io.json) {
        printJson(io.out, { ...chain, ok, exitCode, gaps, checkedKeys: records.map((r) => r.key), skipped: skipped.map((s) => `${s.what} (${s.message})`), nothingChecked });
      } else if (chain.problem !== undefined) {
        io.err(`${io.color.red('✘')} ${file}: line ${chain.line}: ${chain.problem}`);
      } else if (!chain.ok) {
        for (const { problem } of chain.storeProblems) io.err(`${io.color.red('✘')} ${problem}`);
        if (chain.anchor?.problem) io.err(`${io.color.red('✘')} ${file}: anchor ${chain.anchor.file}: ${chain.anchor.problem}`);
      } else if (gaps.length > 0) {
        for (const gap of gaps) io.err(`${io.color.red('✘')} ${file}: ${gap.problem}`);
      } else if (nothingChecked) {
        io.err(`${io.color.red('✘')} ${file}: no audit entries and no key in the embedded store: nothing was verified`);
      } else if (!ok) {
        io.err(`${io.color.red('✘')} ${file}: no problem found in ${chain.entries} entries, but not everything could be checked (below); this is not a pass`);
      } else {
        io.out(`${io.color.green('✔')} ${file}: ${chain.entries} entries, chain intact${chain.head ? ` (head ${chain.head.slice(0, 16)})` : ''}; consistent with ${records.length} key(s) in the embedded store`);
      }
      if (!io.json) {
        for (const s of skipped) io.err(`${io.color.red('✘')} not checked against the store: ${s.what} (${s.message})`);
        for (const reason of chain.notChecked) io.err(`${io.color.yellow('!')} not checked: ${reason}`);
        if (chain.legacyEntries > 0) io.err(`${io.color.yellow('!')} lines 1–${chain.legacyEntries} are legacy (unkeyed SHA-256 chain, written before the log was keyed)${chain.keyedEntries > 0 ? '; sealed by the keyed line after them' : ': anyone who can write the file could have rewritten them'}`);
      }
      return exitCode;
    },
    { writesState: false },
  );
}

/**
 * `audit accept-store STORE`: a person says the store as it is now is the one to keep (a backup
 * restored on purpose after the newest copy was lost, or a log that was lost). Without it every
 * command refuses such a store (exit 3). Audited as a keyed `store.accepted` line.
 */
export async function auditAcceptStoreCommand(storeName: string, globals: GlobalOptions, io: Io): Promise<number> {
  return withSession(globals, io, async (session) => {
    const config = session.config.stores[storeName];
    if (config?.type !== 'file') throw new UsageError(`accept-store: "${storeName}" is not an embedded file store in the config`, 'usage.accept_store');
    const state = await (await session.storeNamed(storeName)).generationState!();
    const announced = await session.audit.announced(storeName);
    const problem = generationProblem(state, announced, session.config.auditPath);
    if (!problem) {
      io.out(`${io.color.green('✔')} store "${storeName}" already agrees with the audit log (generation ${state.generation}); nothing to accept`);
      return 0;
    }
    io.err(`${io.color.yellow('!')} ${problem}`);
    await confirmDestructive(io, globals.yes, `Accept store "${storeName}" as it is now (generation ${state.generation}, the log says ${announced})?`, 'accept-store');
    await session.audit.acceptStore(storeName, state.generation, state.file, announced);
    io.out(`${io.color.green('✔')} accepted store "${storeName}" at generation ${state.generation} (the log said ${announced}); recorded in ${session.config.auditPath}`);
    return 0;
  });
}

/**
 * A broken chain, a store that disagrees or a gap needs a human (3); a store or key that would
 * not open ends with its own code (a wrong passphrase: 6), never a ✔; anything left unchecked
 * (no log and nothing in the store, lines that could not be authenticated) is a failure (1).
 */
function verifyExitCode(found: { broken: boolean; skipped: ExitCode[]; unchecked: boolean }): ExitCode {
  if (found.broken) return ExitCode.needsHuman;
  if (found.skipped.length > 0) return found.skipped.reduce(mostSerious, ExitCode.ok) || ExitCode.failed;
  return found.unchecked ? ExitCode.failed : ExitCode.ok;
}
