import type { SecretInUse } from '../targets/target.js';

/**
 * A place a key is presented from (DESIGN.md "consumer"): an identity provider's provisioning
 * job, a file an agent reads, a command. The engine tells it each new version in three steps
 * (validate, switch, prove) and gives it the current version back to roll back. Expected
 * outcomes are values; a consumer throws only for the unexpected. A consumer keeps one value:
 * it has no overlap of its own, and the engine never assumes one.
 */
export interface Consumer {
  readonly type: ConsumerType;
  /** The name it goes by in output and in the claim (config `name`, or "<type>-<n>"). */
  readonly name: string;
  /**
   * Before anything at the consumer changes: would it work with `next`? (Entra:
   * validateCredentials, in which Entra itself tests the app with the token.) Consumers that
   * cannot tell answer ok with a detail saying so.
   */
  validate(next: SecretInUse): Promise<ConsumerAnswer>;
  /** Make the consumer present `secret` from now on. Idempotent: a resumed run may switch twice. Also the rollback (with the current version). */
  switch(secret: SecretInUse): Promise<ConsumerAnswer>;
  /** After the switch: the consumer is healthy with `secret` (Entra: the job is not in quarantine). */
  prove(secret: SecretInUse): Promise<ConsumerAnswer>;
  /** `test`/`status`: does the consumer hold and work with `current`? Includes what the consumer recorded (failed validations). */
  check(current: SecretInUse): Promise<ConsumerAnswer>;
  close(): Promise<void>;
}

export type ConsumerType = 'entra' | 'okta' | 'file' | 'exec' | 'store';

export type ConsumerAnswer =
  | { ok: true; detail?: string }
  | {
      ok: false;
      /** rejected: the consumer (or the app, through it) refused the credential; denied: provkey's own credential lacks a permission. */
      reason: 'rejected' | 'unreachable' | 'denied' | 'error';
      detail: string;
    };

export type ConsumerStepName = 'validate' | 'switch' | 'prove' | 'check';
