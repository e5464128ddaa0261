import { keyStatuses } from '../../engine/status.js';
import { selectKeys, withSession, type GlobalOptions } from '../globals.js';
import type { Io } from '../io.js';
import { renderStatus } from '../render/status.js';

export async function statusCommand(options: { keys: string[] }, globals: GlobalOptions, io: Io): Promise<number> {
  return withSession(
    globals,
    io,
    async (session) => {
      const statuses = await keyStatuses(session, selectKeys(session.config, options.keys, true));
      await renderStatus(io, statuses);
      if (statuses.some((s) => s.state === 'lockout' || s.state === 'attention')) return 3;
      return statuses.some((s) => s.state === 'error') ? 1 : 0;
    },
    { mustExist: false },
  );
}
