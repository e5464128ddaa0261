import type { StoreConsumerConfig } from '../config/schema.js';
import { parseDuration } from '../core/duration.js';
import type { AdapterContext } from '../stores/context.js';
import type { SecretInUse } from '../targets/target.js';
import type { Consumer, ConsumerAnswer } from './consumer.js';
import { JsonClient } from './http.js';
import { runConsumerCommand } from './run-command.js';

/**
 * A consumer that reads the store itself (External Secrets, a CSI driver, an agent reading the
 * newest version). provkey changes nothing there; with a readiness probe it waits until the
 * consumer says it holds the fingerprint: a URL answering 200 with the fingerprint in its body,
 * or a command exiting 0 for PROVKEY_FINGERPRINT (no value on stdin). Without a probe nothing is
 * proven, and the detail says so.
 */
export function createStoreConsumer(options: { keyName: string; name: string; field: string; config: StoreConsumerConfig; context: AdapterContext }): Consumer {
  const { config, context, field } = options;
  const timeoutMs = parseDuration(config.timeout, `${field}.timeout`);
  const probe = config.probe;
  const http = probe && 'url' in probe ? new JsonClient({ caFile: probe.tls.caFile, configDir: context.configDir, caField: `${field}.probe.tls.caFile`, timeoutMs: 10_000, retries: 0, maxRetryDelayMs: 0 }) : undefined;

  const once = async (secret: SecretInUse): Promise<ConsumerAnswer> => {
    if (!probe) return { ok: true, detail: 'no readiness probe configured: not proven' };
    if ('url' in probe) {
      const reply = await http!.send({ method: 'GET', url: new URL(probe.url) });
      if (reply.kind === 'unreachable') return { ok: false, reason: 'unreachable', detail: `probe ${probe.url}: ${reply.code}` };
      if (reply.status === 200 && reply.text.includes(secret.fingerprint)) return { ok: true, detail: `the probe reports ${secret.fingerprint}` };
      return { ok: false, reason: 'rejected', detail: `the probe does not report ${secret.fingerprint} (HTTP ${reply.status})` };
    }
    return runConsumerCommand(
      { command: probe.command, cwd: context.configDir, env: context.env, passEnv: probe.passEnv, timeoutMs: Math.min(timeoutMs, 30_000), what: `readiness probe of ${options.name}` },
      { PROVKEY_KEY: options.keyName, PROVKEY_CONSUMER: options.name, PROVKEY_FINGERPRINT: secret.fingerprint },
      undefined,
    );
  };

  /** The consumer picks the change up on its own schedule: ask again with backoff until the timeout. */
  const waitFor = async (secret: SecretInUse): Promise<ConsumerAnswer> => {
    const deadline = Date.now() + timeoutMs;
    let delay = 100;
    for (;;) {
      const answer = await once(secret);
      if (answer.ok || Date.now() + delay > deadline) return answer;
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 5000);
    }
  };

  return {
    type: 'store',
    name: options.name,
    validate: async () => ({ ok: true, detail: 'the consumer reads the store itself' }),
    switch: async () => ({ ok: true, detail: 'the consumer reads the store itself' }),
    prove: waitFor,
    check: once,
    async close() {
      http?.close();
    },
  };
}
