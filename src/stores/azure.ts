// Azure Key Vault is not available yet: no Key Vault implementation could be run here to prove
// an adapter against (see docs/azure.md), and provkey ships no adapter that only a hand-written
// double has tested.
import type { AzureStoreConfig } from '../config/schema.js';
import { ConfigError } from '../core/errors.js';
import type { AdapterContext } from './context.js';
import type { SecretStore } from './store.js';

export async function createAzureStore(name: string, _config: AzureStoreConfig, _context: AdapterContext): Promise<SecretStore> {
  throw new ConfigError(`stores.${name}.type: the azure store is not available yet (see docs/azure.md); use file or vault`, 'config.unsupported');
}
