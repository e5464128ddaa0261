import { homedir } from 'node:os';
import path from 'node:path';
import type { AzureStoreConfig } from '../../config/schema.js';
import { parseDuration } from '../../core/duration.js';
import { ConfigError } from '../../core/errors.js';
import { isIP } from 'node:net';
import { isLoopbackHost } from '../../core/loopback.js';
import type { AdapterContext } from '../context.js';
import { checkPrefix } from './names.js';

/** An azure store's config checked once when the store is opened (no I/O). */
export interface AzureSettings {
  storeName: string;
  /** Origin of the vault, no trailing slash: "https://NAME.vault.azure.net". */
  vaultUrl: string;
  /** The vault's host, for messages ("secrets/set on NAME.vault.azure.net"). */
  vault: string;
  prefix: string;
  auth: AzureStoreConfig['auth'];
  authorityHost: string | undefined;
  timeoutMs: number;
  retries: number;
  maxRetryDelayMs: number;
  /** 0 when the server promises strictly increasing createdOn (emulator.strictlyIncreasingCreatedOn): no wait, checked on every listing instead. */
  settleMs: number;
  valueExpiryMs: number | undefined;
  purgeOnDelete: boolean;
  emulator:
    | {
        caFile: string | undefined;
        disableChallengeResourceVerification: boolean;
        disableInstanceDiscovery: boolean;
        /** Loopback IP every connection to the vault goes to (the vault's name still drives TLS and the challenge check). */
        connectTo: string | undefined;
        strictlyIncreasingCreatedOn: boolean;
      }
    | undefined;
}

/** A fork decision needs a listing that starts a full Key Vault second after the write. */
const MIN_SETTLE_MS = 1100;

export function resolveAzureSettings(name: string, config: AzureStoreConfig, context: AdapterContext): AzureSettings {
  const field = (f: string) => `stores.${name}.${f}`;
  const resolvePath = (p: string) => path.resolve(context.configDir, p.startsWith('~/') ? path.join(homedir(), p.slice(2)) : p);

  let url: URL;
  try {
    url = new URL(config.vaultUrl);
  } catch {
    throw new ConfigError(`${field('vaultUrl')}: "${config.vaultUrl}" is not a URL (e.g. https://my-vault.vault.azure.net)`);
  }
  if (url.protocol !== 'https:') throw new ConfigError(`${field('vaultUrl')}: Key Vault is reached over https:// only`);
  if (url.username || url.password || url.search || url.hash || (url.pathname !== '/' && url.pathname !== '')) {
    throw new ConfigError(`${field('vaultUrl')}: must be the vault's origin only (https://NAME.vault.azure.net), without a path, query or credentials`);
  }
  const prefixProblem = checkPrefix(config.secretPrefix, field('secretPrefix'));
  if (prefixProblem) throw new ConfigError(prefixProblem);

  if (config.authorityHost !== undefined) {
    let authority: URL;
    try {
      authority = new URL(config.authorityHost);
    } catch {
      throw new ConfigError(`${field('authorityHost')}: "${config.authorityHost}" is not a URL (e.g. https://login.microsoftonline.us)`);
    }
    if (authority.protocol !== 'https:') throw new ConfigError(`${field('authorityHost')}: must be https://`);
  }
  if (config.destroyOnRevoke) {
    throw new ConfigError(
      `${field('destroyOnRevoke')}: Key Vault cannot purge a single version of a secret; revoke disables the version (enabled=false). To remove every value for good, delete and purge the whole key (docs/azure.md, soft delete)`,
    );
  }
  const connectTo = config.emulator?.connectTo;
  if (connectTo !== undefined && (isIP(connectTo) === 0 || !isLoopbackHost(connectTo))) {
    throw new ConfigError(`${field('emulator.connectTo')}: "${connectTo}" must be a loopback IP address (127.0.0.1, ::1): the host override exists for a local emulator only`);
  }
  const auth = config.auth;
  if (auth.method === 'clientCertificate' && (auth.certificatePath === undefined) === (auth.certificateRef === undefined)) {
    throw new ConfigError(`${field('auth')}: give exactly one of certificatePath and certificateRef`);
  }

  const ms = (value: string, f: string, min: number) => {
    const parsed = parseDuration(value, field(f));
    if (parsed < min) throw new ConfigError(`${field(f)}: must be at least ${min} ms`);
    return parsed;
  };
  return {
    storeName: name,
    vaultUrl: url.origin,
    vault: url.host,
    prefix: config.secretPrefix,
    auth: auth.method === 'clientCertificate' && auth.certificatePath ? { ...auth, certificatePath: resolvePath(auth.certificatePath) } : auth,
    authorityHost: config.authorityHost,
    timeoutMs: ms(config.timeout, 'timeout', 1),
    retries: config.retries,
    maxRetryDelayMs: ms(config.maxRetryDelay, 'maxRetryDelay', 1),
    settleMs: config.emulator?.strictlyIncreasingCreatedOn ? 0 : ms(config.settle, 'settle', MIN_SETTLE_MS),
    valueExpiryMs: config.valueExpiry === undefined ? undefined : ms(config.valueExpiry, 'valueExpiry', 1),
    purgeOnDelete: config.purgeOnDelete,
    emulator: config.emulator && {
      caFile: config.emulator.caFile === undefined ? undefined : resolvePath(config.emulator.caFile),
      disableChallengeResourceVerification: config.emulator.disableChallengeResourceVerification,
      disableInstanceDiscovery: config.emulator.disableInstanceDiscovery,
      connectTo,
      strictlyIncreasingCreatedOn: config.emulator.strictlyIncreasingCreatedOn,
    },
  };
}
