import type { TokenCredential } from '@azure/identity';
import type { AdapterContext } from '../context.js';
import type { AzureSettings } from './settings.js';

/**
 * The credential for the configured auth method. Client secrets and certificates come from
 * secret references or files (never argv); `options` carries the authority host, TLS and
 * retry settings every method shares.
 */
export async function createCredential(
  identity: typeof import('@azure/identity'),
  settings: AzureSettings,
  context: AdapterContext,
  options: Record<string, unknown>,
): Promise<TokenCredential> {
  const auth = settings.auth;
  const field = `stores.${settings.storeName}.auth`;
  switch (auth.method) {
    case 'default':
      return new identity.DefaultAzureCredential({
        ...options,
        ...(auth.tenantId === undefined ? {} : { tenantId: auth.tenantId }),
        ...(auth.managedIdentityClientId === undefined ? {} : { managedIdentityClientId: auth.managedIdentityClientId }),
      });
    case 'clientSecret': {
      const secret = await context.resolveSecret(auth.clientSecretRef, `${field}.clientSecretRef`);
      return new identity.ClientSecretCredential(auth.tenantId, auth.clientId, secret, options);
    }
    case 'clientCertificate': {
      const chain = { ...options, sendCertificateChain: auth.sendCertificateChain };
      if (auth.certificatePath) return new identity.ClientCertificateCredential(auth.tenantId, auth.clientId, { certificatePath: auth.certificatePath }, chain);
      const certificate = await context.resolveSecret(auth.certificateRef!, `${field}.certificateRef`);
      return new identity.ClientCertificateCredential(auth.tenantId, auth.clientId, { certificate }, chain);
    }
    case 'managedIdentity':
      return auth.clientId === undefined
        ? new identity.ManagedIdentityCredential(options)
        : new identity.ManagedIdentityCredential({ ...options, clientId: auth.clientId });
  }
}
