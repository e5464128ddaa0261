import { readFile } from 'node:fs/promises';
import type { TokenCredential } from '@azure/identity';
import { ConfigError } from '../../core/errors.js';
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
      const certificate = auth.certificatePath
        ? checkedPem(await readCertificateFile(auth.certificatePath, `${field}.certificatePath`), `${field}.certificatePath (${auth.certificatePath})`)
        : checkedPem(await context.resolveSecret(auth.certificateRef!, `${field}.certificateRef`), `${field}.certificateRef`);
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
