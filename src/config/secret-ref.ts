import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '../core/errors.js';

/**
 * Resolves a secret reference from the config: `env:NAME`, `file:/path` (relative to the
 * config file) or `key:OTHER-KEY` (the current version of another provkey key, e.g. an LDAP
 * admin credential that provkey also rotates). Error messages name the field, never the value.
 */
export async function resolveSecretRef(
  ref: string,
  field: string,
  context: { configDir: string; env: NodeJS.ProcessEnv; readKey?: (key: string) => Promise<string> },
): Promise<string> {
  const colon = ref.indexOf(':');
  const scheme = ref.slice(0, colon);
  const rest = ref.slice(colon + 1);
  switch (scheme) {
    case 'env': {
      const value = context.env[rest];
      if (!value) throw new ConfigError(`${field}: environment variable ${rest} is not set`, 'config.secret_ref');
      return value;
    }
    case 'file': {
      const file = path.resolve(context.configDir, rest);
      try {
        return (await readFile(file, 'utf8')).replace(/\r?\n$/, '');
      } catch (error) {
        throw new ConfigError(`${field}: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`, 'config.secret_ref');
      }
    }
    case 'key': {
      if (!context.readKey) throw new ConfigError(`${field}: key: references are not available here`, 'config.secret_ref');
      return context.readKey(rest);
    }
    default:
      throw new ConfigError(`${field}: unknown reference scheme "${scheme}" (use env:, file: or key:)`, 'config.secret_ref');
  }
}
