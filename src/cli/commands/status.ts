import { ExitCode, mostSerious } from '../../core/errors.js';
import { keyStatuses } from '../../engine/status.js';
import { observeRun } from '../../observe/observer.js';
import { selectKeys, withSession, type GlobalOptions } from '../globals.js';
import type { Io } from '../io.js';
import { renderStatus } from '../render/status.js';

export async function statusCommand(options: { keys: string[] }, globals: GlobalOptions, io: Io): Promise<number> {
  return withSession(
    globals,
    io,
    async (session) => {
      const observer = await observeRun(session, globals, io, 'status');
      const statuses = await keyStatuses(session, selectKeys(session.config, options.keys));
      await renderStatus(io, statuses);
      const codes = statuses.map((s): ExitCode => (s.state === 'lockout' || s.state === 'attention' || s.state === 'interrupted' ? ExitCode.needsHuman : s.state === 'error' ? ((s.errorExitCode ?? ExitCode.failed) as ExitCode) : ExitCode.ok));
      const exitCode = codes.reduce(mostSerious, ExitCode.ok);
      // Metrics describe every key, not only the ones asked for: the textfile is rewritten whole.
      await observer.finish({ exitCode, ...(options.keys.length === 0 ? { statuses } : {}) });
      return exitCode;
    },
    { writesState: false },
  );
}
