import { readFile } from 'node:fs/promises';
import type { TokenCredential } from '@azure/identity';
import type { AzureStoreConfig } from '../config/schema.js';
import { ConfigError } from '../core/errors.js';

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
      const certificate = auth.certificatePath
        ? checkedPem(await readCertificateFile(auth.certificatePath, `${field}.certificatePath`), `${field}.certificatePath (${auth.certificatePath})`)
        : checkedPem(await resolveSecret(auth.certificateRef!, `${field}.certificateRef`), `${field}.certificateRef`);
      return new identity.ClientCertificateCredential(auth.tenantId, auth.clientId, { certificate }, chain);
    }
    case 'managedIdentity':
      return auth.clientId === undefined
        ? new identity.ManagedIdentityCredential(options)
        : new identity.ManagedIdentityCredential({ ...options, clientId: auth.clientId });
  }
}

async function readCertificateFile(file: string, field: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`${field}: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** The SDK's own error for a bad PEM is a stack deep in MSAL; say which field is wrong instead (never quoting the file). */
function checkedPem(pem: string, field: string): string {
  if (!/-----BEGIN CERTIFICATE-----/.test(pem) || !/-----BEGIN (RSA |EC |ENCRYPTED )?PRIVATE KEY-----/.test(pem)) {
    throw new ConfigError(`${field}: must be a PEM holding the certificate and its private key (-----BEGIN CERTIFICATE----- and -----BEGIN PRIVATE KEY-----)`);
  }
  if (/ENCRYPTED PRIVATE KEY/.test(pem)) throw new ConfigError(`${field}: the private key is encrypted; provkey needs an unencrypted PEM (protect the file instead)`);
  return pem;
}
