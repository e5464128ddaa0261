import type { StoreConfig } from '../config/schema.js';
import type { AdapterContext } from './context.js';
import type { SecretStore } from './store.js';

/**
 * Opens a store by type. Each adapter is imported only when a key in this run uses it, so
 * `provkey --help` and file-store runs never load the Vault adapter or the Azure SDK.
 */
export async function openStore(name: string, config: StoreConfig, context: AdapterContext): Promise<SecretStore> {
  switch (config.type) {
    case 'file':
      return (await import('./file.js')).createFileStore(name, config, context);
    case 'vault':
      return (await import('./vault.js')).createVaultStore(name, config, context);
    case 'azure':
      return (await import('./azure.js')).createAzureStore(name, config, context);
  }
}
