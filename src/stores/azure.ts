// Placeholder until the azure store lands (see issue 3).
import type { AzureStoreConfig } from '../config/schema.js';
import { ConfigError } from '../core/errors.js';
import type { AdapterContext } from './context.js';
import type { SecretStore } from './store.js';

export async function createAzureStore(name: string, _config: AzureStoreConfig, _context: AdapterContext): Promise<SecretStore> {
  throw new ConfigError(`stores.${name}.type: the azure store is not available in this build`, 'config.unsupported');
}
