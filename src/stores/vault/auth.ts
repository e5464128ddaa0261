import { readFile } from 'node:fs/promises';
import { registerSecret } from '../../core/redact.js';
import { vaultError } from './errors.js';
import type { CredentialSource, VaultAuthSettings } from './settings.js';

/**
 * How the store gets a Vault token. `token` reads one that already exists; `approle` and
 * `kubernetes` log in (and can log in again when the token expires during a long run).
 */
export type Login =
  | { kind: 'token'; token: string; source: string }
  | { kind: 'login'; path: string; body: Record<string, string>; describe: string };

/** Reads the credentials the configured method needs. Every value read is registered for redaction. */
export async function prepareLogin(auth: VaultAuthSettings, storeName: string): Promise<Login> {
  const field = (f: string) => `stores.${storeName}.auth.${f}`;
  switch (auth.method) {
    case 'token': {
      // An explicitly configured file wins over the environment, which wins over the CLI's token helper file.
      if (auth.tokenFile) {
        return { kind: 'token', token: await readCredentialFile(auth.tokenFile, `${field('tokenFile')}`, 'token'), source: auth.tokenFile };
      }
      if (auth.envToken) {
        registerSecret(auth.envToken);
        return { kind: 'token', token: auth.envToken, source: 'VAULT_TOKEN' };
      }
      const fromHome = await readFile(auth.defaultTokenFile, 'utf8').catch(() => undefined);
      if (fromHome?.trim()) {
        registerSecret(fromHome.trim());
        return { kind: 'token', token: fromHome.trim(), source: auth.defaultTokenFile };
      }
      throw vaultError(
        'auth_failed',
        `no Vault token: set VAULT_TOKEN, ${field('tokenFile')}, or log in with the CLI (${auth.defaultTokenFile}); or use auth.method approle/kubernetes`,
      );
    }
    case 'approle': {
      const [roleId, secretId] = await Promise.all([readSource(auth.roleId, field), readSource(auth.secretId, field)]);
      return { kind: 'login', path: `auth/${auth.mount}/login`, body: { role_id: roleId, secret_id: secretId }, describe: `AppRole login at auth/${auth.mount}` };
    }
    case 'kubernetes': {
      const jwt = await readCredentialFile(auth.jwtFile, field('jwtFile'), 'service-account token');
      return { kind: 'login', path: `auth/${auth.mount}/login`, body: { role: auth.role, jwt }, describe: `Kubernetes login at auth/${auth.mount} as role ${auth.role}` };
    }
  }
}

async function readSource(source: CredentialSource, field: (f: string) => string): Promise<string> {
  if ('file' in source) return readCredentialFile(source.file, field(`${source.what === 'role_id' ? 'roleIdFile' : 'secretIdFile'}`), source.what);
  if (!source.value) {
    throw vaultError('auth_failed', `AppRole ${source.what} missing: set ${source.env} or ${field(source.what === 'role_id' ? 'roleIdFile' : 'secretIdFile')}`);
  }
  registerSecret(source.value);
  return source.value;
}

async function readCredentialFile(file: string, field: string, what: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw vaultError('auth_failed', `${field}: cannot read the ${what} from ${file} (${code})`);
  }
  const value = text.trim();
  if (!value) throw vaultError('auth_failed', `${field}: ${file} is empty`);
  registerSecret(value);
  return value;
}
