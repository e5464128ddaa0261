import { chown, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { FileConsumerConfig } from '../config/schema.js';
import { fingerprint } from '../core/fingerprint.js';
import { writeFileAtomic } from '../io/atomic-write.js';
import type { AdapterContext } from '../stores/context.js';
import type { SecretInUse } from '../targets/target.js';
import type { Consumer, ConsumerAnswer } from './consumer.js';

/**
 * A file the consumer reads the key from (an agent's token file): written atomically (temp file,
 * fsync, rename) with mode 0600 and, when configured, chowned. The proof reads it back and
 * compares fingerprints: the file holds exactly the value, no newline added.
 */
export function createFileConsumer(options: { name: string; config: FileConsumerConfig; context: AdapterContext }): Consumer {
  const file = path.resolve(options.context.configDir, options.config.path);
  const owner = options.config.owner;
  const holds = async (secret: SecretInUse): Promise<ConsumerAnswer> => {
    const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? undefined : Promise.reject(error)));
    if (text === undefined) return { ok: false, reason: 'rejected', detail: `${file} does not exist` };
    const held = fingerprint(text);
    return held === secret.fingerprint ? { ok: true, detail: `${file} holds ${secret.fingerprint}` } : { ok: false, reason: 'rejected', detail: `${file} holds ${held}, not ${secret.fingerprint}` };
  };
  return {
    type: 'file',
    name: options.name,
    validate: async () => ({ ok: true, detail: 'a file takes any value' }),
    async switch(secret) {
      try {
        await writeFileAtomic(file, secret.value, 0o600);
        if (owner) await chown(file, owner.uid, owner.gid ?? -1);
      } catch (error) {
        return { ok: false, reason: 'error', detail: `cannot write ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})` };
      }
      return { ok: true, detail: `${file} now holds ${secret.fingerprint}` };
    },
    prove: holds,
    check: holds,
    close: async () => undefined,
  };
}
