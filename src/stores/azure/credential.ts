import type { TokenCredential } from '@azure/identity';
import { createAzureCredential } from '../../azure-credential/credential.js';
import type { AdapterContext } from '../context.js';
import type { AzureSettings } from './settings.js';

/** The store's credential: the shared builder (src/azure-credential), errors naming stores.NAME.auth. */
export async function createCredential(
  identity: typeof import('@azure/identity'),
  settings: AzureSettings,
  context: AdapterContext,
  options: Record<string, unknown>,
): Promise<TokenCredential> {
  return createAzureCredential(identity, settings.auth, `stores.${settings.storeName}.auth`, (ref, field) => context.resolveSecret(ref, field), options);
}
