import type { TokenCredential } from '@azure/identity';
import type { AzureStoreConfig } from '../config/schema.js';

/** The auth methods the config offers wherever provkey talks to Microsoft (Key Vault, Graph). */
export type AzureAuthConfig = AzureStoreConfig['auth'];

/**
 * The credential for a configured auth method, shared by the Azure store and the Entra
 * consumer. Client secrets and certificates come from secret references or files (never argv);
 * `options` carries the authority host, TLS and retry settings every method shares; `field` is
 * the config path errors name.
 */
export async function createAzureCredential(
  identity: typeof import('@azure/identity'),
  auth: AzureAuthConfig,
  field: string,
  resolveSecret: (ref: string, field: string) => Promise<string>,
  options: Record<string, unknown>,
): Promise<TokenCredential> {
  switch (auth.method) {
    case 'default':
      return new identity.DefaultAzureCredential({
        ...options,
        ...(auth.tenantId === undefined ? {} : { tenantId: auth.tenantId }),
        ...(auth.managedIdentityClientId === undefined ? {} : { managedIdentityClientId: auth.managedIdentityClientId }),
      });
    case 'clientSecret': {
      const secret = await resolveSecret(auth.clientSecretRef, `${field}.clientSecretRef`);
      return new identity.ClientSecretCredential(auth.tenantId, auth.clientId, secret, options);
    }
    case 'clientCertificate': {
      const chain = { ...options, sendCertificateChain: auth.sendCertificateChain };
      if (auth.certificatePath) return new identity.ClientCertificateCredential(auth.tenantId, auth.clientId, { certificatePath: auth.certificatePath }, chain);
      const certificate = await resolveSecret(auth.certificateRef!, `${field}.certificateRef`);
      return new identity.ClientCertificateCredential(auth.tenantId, auth.clientId, { certificate }, chain);
    }
    case 'managedIdentity':
      return auth.clientId === undefined
        ? new identity.ManagedIdentityCredential(options)
        : new identity.ManagedIdentityCredential({ ...options, clientId: auth.clientId });
  }
}
