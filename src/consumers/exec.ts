import type { ExecConsumerConfig } from '../config/schema.js';
import { parseDuration } from '../core/duration.js';
import type { AdapterContext } from '../stores/context.js';
import type { SecretInUse } from '../targets/target.js';
import type { Consumer, ConsumerStepName } from './consumer.js';
import { runConsumerCommand } from './run-command.js';

/**
 * A command that is the consumer's side: it receives the value on stdin and PROVKEY_ACTION
 * (validate, switch, prove, check), PROVKEY_KEY, PROVKEY_CONSUMER and PROVKEY_FINGERPRINT in env.
 * Each action must be idempotent: a resumed run may repeat one. A rollback is a `switch` with
 * the current version.
 */
export function createExecConsumer(options: { keyName: string; name: string; field: string; config: ExecConsumerConfig; context: AdapterContext }): Consumer {
  const { config, context } = options;
  const timeoutMs = parseDuration(config.timeout, `${options.field}.timeout`);
  const run = (action: ConsumerStepName, secret: SecretInUse) =>
    runConsumerCommand(
      { command: config.command, cwd: context.configDir, env: context.env, passEnv: config.passEnv, timeoutMs, what: `consumer ${options.name} ${action}` },
      { PROVKEY_ACTION: action, PROVKEY_KEY: options.keyName, PROVKEY_CONSUMER: options.name, PROVKEY_FINGERPRINT: secret.fingerprint },
      secret.value,
    );
  return {
    type: 'exec',
    name: options.name,
    validate: (next) => run('validate', next),
    switch: (secret) => run('switch', secret),
    prove: (secret) => run('prove', secret),
    check: (current) => run('check', current),
    close: async () => undefined,
  };
}
