import type { Consumer } from '../consumers/consumer.js';
import { UsageError } from '../core/errors.js';
import type { SecretStore } from '../stores/store.js';
import type { Target } from '../targets/target.js';

/**
 * In a --dry-run session stores and targets are wrapped so that anything that would change
 * them fails closed: a command without its own dry-run plan stops instead of acting unaudited.
 * Reads and connection tests stay allowed.
 */
function refuse(what: string): never {
  throw new UsageError(`--dry-run: this command would change ${what}; nothing was changed`, 'usage.dry_run');
}

export function readOnlyStore(store: SecretStore): SecretStore {
  const where = `the "${store.name}" store`;
  return {
    name: store.name,
    type: store.type,
    capabilities: store.capabilities,
    listKeys: () => store.listKeys(),
    read: (key) => store.read(key),
    readSecret: (key, versionId) => store.readSecret(key, versionId),
    close: () => store.close(),
    addVersion: async () => refuse(where),
    update: async () => refuse(where),
    disableVersion: async () => refuse(where),
    deleteKey: async () => refuse(where),
    // Reading, not changing: the audit chain key and the generation (audit verify, replay checks).
    ...(store.auditKey ? { auditKey: () => store.auditKey!({ create: false }) } : {}),
    ...(store.generationState ? { generationState: () => store.generationState!() } : {}),
  };
}

/** A dry run's consumer: `check` (changes nothing) works; a change would be a bug, and is refused. */
export function checkOnlyConsumer(consumer: Consumer): Consumer {
  const where = `consumer ${consumer.name}`;
  return {
    type: consumer.type,
    name: consumer.name,
    check: (current) => consumer.check(current),
    close: () => consumer.close(),
    validate: async () => refuse(where),
    switch: async () => refuse(where),
    prove: async () => refuse(where),
  };
}

export function testOnlyTarget(target: Target): Target {
  const where = `the ${target.type} target`;
  return {
    type: target.type,
    get capabilities() {
      return target.capabilities;
    },
    test: (secret, options) => target.test(secret, options),
    close: () => target.close(),
    set: async () => refuse(where),
    retire: async () => refuse(where),
    rollback: async () => refuse(where),
    ...(target.checkGenerationPolicy ? { checkGenerationPolicy: (policy, current) => target.checkGenerationPolicy!(policy, current) } : {}),
    ...(target.identify ? { identify: (candidates) => target.identify!(candidates) } : {}),
    ...(target.expiresAt ? { expiresAt: (current) => target.expiresAt!(current) } : {}),
  };
}
