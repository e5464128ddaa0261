import type { ApplyResult, Target } from '../../target.js';

/**
 * How the app behind a SCIM endpoint learns a new token: `store` (it reads provkey's store
 * itself), `http` (a token endpoint), `exec` (a command that gets the token on stdin).
 * Expected failures come back as ApplyResult values; only a config that cannot work throws.
 */
export interface TokenApplier {
  set(change: Parameters<Target['set']>[0]): Promise<ApplyResult>;
  retire(change: Parameters<Target['retire']>[0]): Promise<ApplyResult>;
  rollback(change: Parameters<Target['rollback']>[0]): Promise<ApplyResult>;
}
