import { ExitCode, mostSerious } from '../../core/errors.js';
import { keyStatuses } from '../../engine/status.js';
import { selectKeys, withSession, type GlobalOptions } from '../globals.js';
import type { Io } from '../io.js';
import { renderStatus } from '../render/status.js';

export async function statusCommand(options: { keys: string[] }, globals: GlobalOptions, io: Io): Promise<number> {
  return withSession(
    globals,
    io,
    async (session) => {
      const statuses = await keyStatuses(session, selectKeys(session.config, options.keys));
      await renderStatus(io, statuses);
      const codes = statuses.map((s): ExitCode => (s.state === 'lockout' || s.state === 'attention' ? ExitCode.needsHuman : s.state === 'error' ? ((s.errorExitCode ?? ExitCode.failed) as ExitCode) : ExitCode.ok));
      return codes.reduce(mostSerious, ExitCode.ok);
    },
    { writesState: false },
  );
}
