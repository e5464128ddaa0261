import { UsageError } from '../../core/errors.js';
import type { GlobalOptions } from '../globals.js';
import type { Io } from '../io.js';

export async function migrateCommand(options: { keys: string[]; to: string }, _globals: GlobalOptions, _io: Io): Promise<number> {
  throw new UsageError(`migrate --to ${options.to}: not available in this build`, 'usage.migrate');
}
