import type { StoreJournal } from '../audit/generation.js';
import type { RotationPolicy } from '../core/schedule.js';

/** What every store and target adapter gets from the engine besides its own config. */
export interface AdapterContext {
  /** Directory of the config file: relative paths in adapter options are resolved against it. */
  configDir: string;
  env: NodeJS.ProcessEnv;
  /** Resolves env:/file:/key: references; the error names `field`, never the value. */
  resolveSecret(ref: string, field: string): Promise<string>;
  /** --verbose diagnostics to stderr. Never pass a secret. */
  debug(message: string): void;
  /** Asks a person for a secret (hidden input); absent when nobody can be asked (cron, --json, no TTY). */
  promptSecret?: (message: string) => Promise<string>;
  /**
   * The run's audit log as a store sees it: the embedded store announces each write's
   * generation there before committing it, and checks its generation against it on open
   * (replay detection). Absent in tests that open a store on its own.
   */
  journal?: StoreJournal;
  /**
   * One map per run, for what adapters learn about a server rather than a key (a SCIM server's
   * answers to the wrong-token probe): shared by every key of the run. Absent: nothing shared.
   */
  runScope?: Map<string, unknown>;
  /** A key's rotation policy from the config (the Azure store derives each version's expiresOn from it); undefined for a key the config does not name. */
  rotationOf?: (key: string) => RotationPolicy | undefined;
}
