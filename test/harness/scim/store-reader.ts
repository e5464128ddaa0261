/**
 * The "app" side of the store applier: an application that reads its accepted SCIM tokens from
 * provkey's store itself. The SCIM test server runs this as its --accept-command; it prints
 * the SHA-256 digest of every enabled version labelled current, pending or previous — the
 * contract docs/scim.md gives apps that use `applier: { type: store }`.
 *
 *   node test/harness/scim/store-reader.ts --config /path/provkey.yaml --key NAME
 */
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { config: { type: 'string' }, key: { type: 'string' } } });
if (!values.config || !values.key) {
  process.stderr.write('store-reader: --config and --key are required\n');
  process.exit(2);
}
const dist = new URL('../../../dist/', import.meta.url);
const { loadConfig } = await import(new URL('config/load.js', dist).href);
const { openStore } = await import(new URL('stores/index.js', dist).href);
const config = await loadConfig(values.config, { mustExist: true });
const key = config.keys[values.key];
const store = await openStore(key.storeName, config.stores[key.storeName], {
  configDir: config.dir,
  env: process.env,
  resolveSecret: async () => '',
  debug: () => {},
});
const record = await store.read(values.key);
for (const version of record?.versions ?? []) {
  if (!['current', 'pending', 'previous'].includes(version.label)) continue;
  try {
    const value: string = await store.readSecret(values.key, version.id);
    process.stdout.write(`${createHash('sha256').update(value).digest('hex')}\n`);
  } catch {
    // A disabled version is not accepted.
  }
}
await store.close();
