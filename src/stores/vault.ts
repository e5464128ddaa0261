// Placeholder until the vault store lands (see issue 3).
import type { VaultStoreConfig } from '../config/schema.js';
import { ConfigError } from '../core/errors.js';
import type { AdapterContext } from './context.js';
import type { SecretStore } from './store.js';

export async function createVaultStore(name: string, _config: VaultStoreConfig, _context: AdapterContext): Promise<SecretStore> {
  throw new ConfigError(`stores.${name}.type: the vault store is not available in this build`, 'config.unsupported');
}
