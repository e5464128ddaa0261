import { azureError } from './errors.js';
import type { AzureSettings } from './settings.js';

/**
 * Turns an SDK failure into an AdapterError naming the Key Vault operation and the vault, with
 * the kind that decides the exit code: unreachable/timeout/throttled/5xx → 5, refused
 * token or permission → 6. Messages never carry a request body or a credential.
 */

/** Key Vault's data-plane permission names, as access policies and messages spell them. */
export type Operation = 'secrets/get' | 'secrets/list' | 'secrets/set' | 'secrets/delete' | 'secrets/purge' | 'secrets/recover';

interface CredentialFailure {
  name?: string;
  statusCode?: number;
  message?: string;
  errorResponse?: { error?: string; errorDescription?: string };
  errors?: CredentialFailure[];
}

export interface MissingError extends Error {
  missing: 'absent' | 'disabled' | 'expired';
}
export interface BeingDeletedMark {
  beingDeleted?: boolean;
}

/**
 * A token could not be had. Unreachable identity endpoints are exit 5 (retry later), a
 * refused credential or none configured exit 6; the STS error and AADSTS code are kept (they
 * never contain the secret), its free-text description is not.
 */
function credentialFailure(settings: AzureSettings, where: string, e: CredentialFailure): Error {
  const failures = e.name === 'AggregateAuthenticationError' && Array.isArray(e.errors) ? e.errors : [e];
  const text = failures.map((f) => `${f.errorResponse?.error ?? ''} ${f.errorResponse?.errorDescription ?? ''} ${f.message ?? ''}`).join(' ');
  const method = settings.auth.method;
  const authority = settings.authorityHost ?? 'https://login.microsoftonline.com';
  const refused = failures.find((f) => f.name === 'AuthenticationError' || f.name === 'AuthenticationRequiredError');
  if (!refused && /endpoints_resolution_error|ECONNREFUSED|ENOTFOUND|ETIMEDOUT|EAI_AGAIN|network|socket|timed? ?out/i.test(text)) {
    return azureError('unreachable', `no token for ${where}: the identity provider (${authority}) cannot be reached or is not an Entra authority (${/endpoints_resolution_error/.test(text) ? 'endpoints_resolution_error' : 'network error'}); check authorityHost and the network, then retry`);
  }
  if (refused?.statusCode !== undefined && refused.statusCode >= 500) {
    return azureError('unreachable', `no token for ${where}: the identity provider answered ${refused.statusCode}; retry later`);
  }
  if (!refused) return azureError('auth_failed', `no token for ${where} with auth method "${method}": no credential is available in this environment (see docs/azure.md, authentication)`);
  const sts = refused.errorResponse?.error ?? /^([a-z_]+):/.exec(refused.message ?? '')?.[1];
  const aadsts = /AADSTS\d+/.exec(text)?.[0];
  const reason = [sts, aadsts].filter(Boolean).join(', ');
  return azureError(
    'auth_failed',
    `no token for ${where} with auth method "${method}"${reason ? ` (${reason})` : ''}: the identity provider refused the credential (wrong client secret or certificate, unknown client id or tenant?)`,
  );
}

export function classifyFailure(settings: AzureSettings, operation: Operation, name: string, error: unknown, options: { disabledIsMissing?: boolean }): Error {
  const e = error as { name?: string; statusCode?: number; code?: string; message?: string; errorResponse?: { error?: string; errorDescription?: string } };
  const where = `${operation} of ${name} on ${settings.vault}`;
  const serviceMessage = oneLine(e.message ?? '');

  if (e.name === 'AuthenticationError' || e.name === 'CredentialUnavailableError' || e.name === 'AggregateAuthenticationError' || e.name === 'AuthenticationRequiredError') {
    return credentialFailure(settings, where, e);
  }

  const status = e.statusCode;
  if (status === undefined) {
    if (e.name === 'AbortError' || /timed? ?out|ETIMEDOUT|ESOCKETTIMEDOUT/i.test(`${e.code ?? ''} ${e.message ?? ''}`)) {
      return azureError('timeout', `${where}: no answer within ${settings.timeoutMs} ms`);
    }
    if (/self[- ]signed|certificate|UNABLE_TO_VERIFY|ERR_TLS|CERT_/i.test(`${e.code ?? ''} ${e.message ?? ''}`)) {
      return azureError('unreachable', `${where}: TLS verification failed (${e.code ?? serviceMessage}); is the vault's certificate trusted?`);
    }
    return azureError('unreachable', `${where}: cannot reach the vault (${e.code ?? serviceMessage})`);
  }
  const code = e.code ?? '';
  if (status === 401) {
    return azureError('auth_failed', `Key Vault refused the token for ${where} (401${code ? ` ${code}` : ''}): expired, for another audience than https://vault.azure.net, or from an issuer the vault does not trust`);
  }
  if (status === 403) {
    if (/disabled/i.test(serviceMessage) && options.disabledIsMissing) return Object.assign(new Error('disabled'), { missing: 'disabled' as const });
    // Key Vault refuses a get past the version's expiresOn with 403 too: not a permission problem.
    if (/expired/i.test(serviceMessage) && options.disabledIsMissing) return Object.assign(new Error('expired'), { missing: 'expired' as const });
    return azureError('permission_denied', `the principal may not ${operation} on ${settings.vault} (403${code ? ` ${code}` : ''}); grant ${operation} (see docs/azure.md, permissions), then retry`);
  }
  if (status === 404) return Object.assign(azureError('not_found', `${where}: not found`), { missing: 'absent' as const });
  if (status === 409) {
    if (/ObjectIsBeingDeleted|being deleted/i.test(`${code} ${serviceMessage}`)) {
      return Object.assign(azureError('server_error', `${where}: Key Vault is still deleting the secret (409 ObjectIsBeingDeleted); retry later`), { beingDeleted: true });
    }
    if (/deleted|recover/i.test(serviceMessage)) {
      return azureError(
        'blocked',
        `${where}: the secret ${name} is deleted but recoverable (soft delete). Recover it (az keyvault secret recover --vault-name … --name ${name}) or purge it (az keyvault secret purge …), then retry`,
      );
    }
    return azureError('locked', `${where}: conflict (409${code ? ` ${code}` : ''})`);
  }
  if (status === 429) return azureError('throttled', `${where}: Key Vault is throttling requests (429) after ${settings.retries} retries; retry later`);
  if (status >= 500) return azureError('server_error', `${where}: Key Vault failed (${status}${code ? ` ${code}` : ''}) after ${settings.retries} retries; retry later`);
  if (status === 400) return azureError('invalid', `${where}: Key Vault refused the request (400${code ? ` ${code}` : ''}): ${serviceMessage.slice(0, 200)}`);
  return azureError('server_error', `${where}: unexpected answer ${status}${code ? ` ${code}` : ''}`);
}

function oneLine(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 300 ? `${line.slice(0, 297)}...` : line;
}

