import * as v from 'valibot';
import { WEBHOOK_EVENTS } from '../observe/events.js';

/**
 * The provkey.yaml schema (valibot: a few ms to load, where zod cost ~60 ms on every run).
 * Durations stay strings here ("30d") and are parsed by config/load.ts, so an error can name
 * the exact field. Secret values never appear in the config itself: fields ending in `Ref`
 * hold a reference (env:NAME, file:/path, key:OTHER-KEY).
 */

const name = v.pipe(
  v.string(),
  v.regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'must be 1-63 chars of a-z, 0-9, ".", "_", "-", starting with a letter or digit'),
);
/** "90s", "30d", … or 0. A bare number other than 0 is refused: seconds or days? */
const duration = v.union(
  [v.pipe(v.string(), v.minLength(1)), v.pipe(v.literal(0), v.transform(() => '0'))],
  'must be a duration such as 90s, 15m, 36h, 30d',
);
const secretRef = v.pipe(v.string(), v.regex(/^(env|file|key):.+/, 'must be a reference: env:NAME, file:/path or key:KEY-NAME'));
/** A file path: never empty (it would name the config's directory). NUL and length are checked before the schema. */
const filePath = v.pipe(v.string(), v.minLength(1, 'must not be empty'));
const bool = (fallback: boolean) => v.optional(v.boolean(), fallback);
const int = (min: number, max: number) => v.pipe(v.number(), v.integer(), v.minValue(min), v.maxValue(max));

const fileStore = v.strictObject({
  type: v.literal('file'),
  /** The embedded store's database (SQLite, every value and record encrypted), relative to the config file; default: store.enc in the state dir (config/load.ts). A provkey 0.1 store file there is upgraded on first open. */
  path: v.optional(filePath),
  /** 32-byte key file (mode 0600), created by `provkey init`; default: store.key in the state dir. Ignored when passphraseEnv is set. */
  keyFile: v.optional(filePath),
  /** Name of the environment variable holding a passphrase (scrypt-derived key) instead of a key file. */
  passphraseEnv: v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'must be an environment variable name'))),
});

const tls = v.optional(v.strictObject({ caFile: v.optional(filePath), serverName: v.optional(v.string()) }), {});

const vaultAuth = v.variant('method', [
  v.strictObject({ method: v.literal('token'), tokenFile: v.optional(filePath) }),
  v.strictObject({
    method: v.literal('approle'),
    mount: v.optional(v.string(), 'approle'),
    roleIdFile: v.optional(filePath),
    roleIdEnv: v.optional(v.string(), 'VAULT_ROLE_ID'),
    secretIdFile: v.optional(filePath),
    secretIdEnv: v.optional(v.string(), 'VAULT_SECRET_ID'),
  }),
  v.strictObject({
    method: v.literal('kubernetes'),
    mount: v.optional(v.string(), 'kubernetes'),
    role: v.string(),
    jwtFile: v.optional(filePath, '/var/run/secrets/kubernetes.io/serviceaccount/token'),
  }),
]);

const vaultStore = v.strictObject({
  type: v.literal('vault'),
  /** e.g. https://vault.example.com:8200; defaults to VAULT_ADDR. */
  address: v.optional(v.string()),
  mount: v.optional(v.string(), 'secret'),
  prefix: v.optional(v.string(), 'provkey'),
  namespace: v.optional(v.string()),
  auth: v.optional(vaultAuth, { method: 'token' }),
  tls,
  /** Plain http:// is refused except to loopback unless this is true. */
  allowInsecureHttp: bool(false),
  timeout: v.optional(duration, '10s'),
  /** Revoke destroys the version's data instead of soft-deleting it. */
  destroyOnRevoke: bool(false),
});

const azureAuth = v.variant('method', [
  /** DefaultAzureCredential: environment (AZURE_*), workload identity, managed identity, Azure CLI. */
  v.strictObject({ method: v.literal('default'), managedIdentityClientId: v.optional(v.string()), tenantId: v.optional(v.string()) }),
  v.strictObject({ method: v.literal('clientSecret'), tenantId: v.string(), clientId: v.string(), clientSecretRef: secretRef }),
  /** A PEM file (certificate + private key), by path or as a secret reference. */
  v.strictObject({
    method: v.literal('clientCertificate'),
    tenantId: v.string(),
    clientId: v.string(),
    certificatePath: v.optional(v.string()),
    certificateRef: v.optional(secretRef),
    sendCertificateChain: bool(false),
  }),
  v.strictObject({ method: v.literal('managedIdentity'), clientId: v.optional(v.string()) }),
]);

const azureStore = v.strictObject({
  type: v.literal('azure'),
  /** https://NAME.vault.azure.net (or a sovereign cloud's vault DNS suffix). */
  vaultUrl: v.string(),
  /** Prepended to every secret name ([0-9a-zA-Z-]); lets several provkey installs share a vault. */
  secretPrefix: v.optional(v.string(), 'provkey-'),
  auth: v.optional(azureAuth, { method: 'default' }),
  /** Entra authority for sovereign clouds, e.g. https://login.microsoftonline.us */
  authorityHost: v.optional(v.string()),
  timeout: v.optional(duration, '15s'),
  /** Attempts after a 429/5xx/network failure (Retry-After honoured), each delay at most maxRetryDelay. */
  retries: v.optional(int(0, 10), 4),
  maxRetryDelay: v.optional(duration, '30s'),
  /** How long a state write waits before re-listing to decide a fork (see docs/azure.md); at least 1100ms. */
  settle: v.optional(duration, '2s'),
  /** Sets expiresOn of each stored version this long after its creation (e.g. interval + grace). */
  valueExpiry: v.optional(duration),
  /** Refused when true: Key Vault cannot purge a single version (revoke sets enabled=false). */
  destroyOnRevoke: v.optional(v.boolean()),
  /** deleteKey (migrate's retire step) purges the soft-deleted secrets so the names can be reused. */
  purgeOnDelete: bool(true),
  /** Settings only a local Key Vault emulator needs; never defaults. */
  emulator: v.optional(
    v.strictObject({
      caFile: v.optional(v.string()),
      disableChallengeResourceVerification: bool(false),
      disableInstanceDiscovery: bool(false),
      /** Host override: connect to this loopback IP whatever vaultUrl's host resolves to (DNS pin). */
      connectTo: v.optional(v.string()),
      /** The server gives each new version of a secret a later createdOn second than the one before (a test double's promise): forks are decided without `settle`. */
      strictlyIncreasingCreatedOn: bool(false),
    }),
  ),
});

export const storeSchema = v.variant('type', [fileStore, vaultStore, azureStore]);

const tokenFormat = v.strictObject({
  type: v.literal('token'),
  prefix: v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z][A-Za-z0-9]{0,15}$/, 'must be 1-16 letters/digits starting with a letter')), 'pk'),
  randomLength: v.optional(int(8, 256), 43),
  allowWeak: bool(false),
});
const passwordFormat = v.strictObject({
  type: v.literal('password'),
  length: v.optional(int(8, 256), 32),
  lower: v.optional(int(-1, 256), 1),
  upper: v.optional(int(-1, 256), 1),
  digits: v.optional(int(-1, 256), 1),
  symbols: v.optional(int(-1, 256), 1),
  symbolSet: v.optional(v.string(), '-_.:+=!@%^*'),
  exclude: v.optional(v.string(), ''),
  allowWeak: bool(false),
});
const bytesFormat = <T extends 'base64url' | 'hex'>(type: T) =>
  v.strictObject({ type: v.literal(type), bytes: v.optional(int(8, 1024), 32), allowWeak: bool(false) });
export const formatSchema = v.variant('type', [tokenFormat, passwordFormat, bytesFormat('base64url'), bytesFormat('hex')]);

const scimApplier = v.variant('type', [
  /** The app reads the store itself; provkey waits until the new version is accepted. */
  v.strictObject({ type: v.literal('store') }),
  /** A token endpoint: POST {"action","token","replaces"} with an admin bearer token. */
  v.strictObject({ type: v.literal('http'), url: v.string(), authRef: secretRef, timeout: v.optional(duration, '10s') }),
  /** A command that receives the token on stdin; PROVKEY_ACTION says apply, revoke or rollback. passEnv: variables it may see besides PATH, HOME, LANG, LC_ALL, TZ, TMPDIR. */
  v.strictObject({ type: v.literal('exec'), command: v.pipe(v.array(v.pipe(v.string(), v.minLength(1, 'must not be empty'))), v.minLength(1)), timeout: v.optional(duration, '30s'), passEnv: v.optional(v.array(v.string()), []) }),
]);

const scimTarget = v.strictObject({
  type: v.literal('scim'),
  /** Base URL of the SCIM 2.0 endpoint, e.g. https://app.example.com/scim/v2 */
  url: v.string(),
  applier: scimApplier,
  propagationTimeout: v.optional(duration, '60s'),
  /** Run the write probe (create, patch, delete a throw-away user) on every test, not only drills. */
  writeProbe: bool(false),
  allowInsecureHttp: bool(false),
  tls,
  requestTimeout: v.optional(duration, '10s'),
});

const ldapTarget = v.strictObject({
  type: v.literal('ldap'),
  /**
   * The directory's dialect (docs/ldap.md): `openldap` (RFC 3062 + ppolicy, also Red Hat /
   * 389-DS's own policy attributes), `activeDirectory` (unicodePwd, the domain's policy).
   */
  directory: v.optional(v.picklist(['openldap', '389ds', 'activeDirectory']), 'openldap'),
  /**
   * activeDirectory: the DCs' "old password allowed period" (Windows OldPasswordAllowedPeriod,
   * Samba smb.conf; default 60 minutes): how long AD still accepts the previous password.
   */
  oldPasswordAllowedPeriod: v.optional(duration, '60m'),
  /** One or more servers (ldaps:// or ldap:// with StartTLS); the test waits until every one accepts a change. */
  urls: v.pipe(v.array(v.string()), v.minLength(1)),
  startTls: bool(true),
  /** Plain LDAP without TLS: refused except to loopback unless true. */
  allowPlain: bool(false),
  tls,
  /** The service account; with `accounts` (two-account rotation) leave it out. */
  bindDn: v.optional(v.pipe(v.string(), v.maxLength(1024)), ''),
  /**
   * Two-account (blue/green) rotation: two service accounts of the same directory; each rotation
   * sets a fresh password on the one not in use (docs/ldap.md). Needs apply.mode admin.
   */
  accounts: v.optional(v.pipe(v.array(v.pipe(v.string(), v.maxLength(1024))), v.length(2, 'must list exactly two account DNs'))),
  /** The provisioning base DN the connection test searches under. */
  searchBase: v.string(),
  searchFilter: v.optional(v.string(), '(objectClass=*)'),
  apply: v.optional(
    v.strictObject({
      mode: v.optional(v.picklist(['self', 'admin']), 'self'),
      adminDn: v.optional(v.string()),
      adminPasswordRef: v.optional(secretRef),
    }),
    { mode: 'self' },
  ),
  /** After a failed test: reset the old password as admin, or keep the new one if it binds. */
  rollback: v.optional(v.picklist(['admin-reset', 'keep-new']), 'keep-new'),
  revoke: v.optional(v.strictObject({ lockAccount: bool(false) }), { lockAccount: false }),
  /** The directory's password policy: read from the server where readable, else from here. */
  passwordPolicy: v.optional(
    v.strictObject({
      dn: v.optional(v.string()),
      minLength: v.optional(int(0, 256)),
      checkQuality: v.optional(int(0, 2)),
      inHistory: v.optional(int(0, 1000)),
      maxAge: v.optional(duration),
      maxFailure: v.optional(int(0, 1000)),
      /** pwdMustChange: an admin reset must be followed by the account's own change (admin apply runs two steps). */
      mustChange: v.optional(v.boolean()),
    }),
    {},
  ),
  /** Whether to prove the old password fails (costs one failed bind). */
  negativeProbe: v.optional(v.picklist(['auto', 'always', 'never']), 'auto'),
  /** The provisioning write probe (`test --write`, drills): a staging OU the account may write to, and a group. */
  writeProbe: v.optional(v.strictObject({ base: v.string(), group: v.optional(v.string()) })),
  propagationTimeout: v.optional(duration, '30s'),
  timeout: v.optional(duration, '10s'),
});

export const targetSchema = v.variant('type', [scimTarget, ldapTarget]);

/**
 * Consumers (docs/consumers.md): the places a key is presented from, each told every new
 * version and each with its own proof. `name` tells them apart in output and in the claim.
 */
const consumerName = v.optional(name);
const entraConsumer = v.strictObject({
  type: v.literal('entra'),
  name: consumerName,
  /** The enterprise application's service principal object id and its provisioning job id (docs/entra.md). */
  servicePrincipalId: v.pipe(v.string(), v.minLength(1, 'must not be empty')),
  jobId: v.pipe(v.string(), v.minLength(1, 'must not be empty')),
  /** The SCIM endpoint Entra is told (BaseAddress); default: the key's target url. */
  baseAddress: v.optional(v.string()),
  auth: v.optional(azureAuth, { method: 'default' }),
  /** Entra authority for sovereign clouds (or a test double), e.g. https://login.microsoftonline.us */
  authorityHost: v.optional(v.string()),
  /** Microsoft Graph's base URL with its version; default https://graph.microsoft.com/v1.0 */
  graphUrl: v.optional(v.string(), 'https://graph.microsoft.com/v1.0'),
  /** Extra CA trust for Graph and the authority (a private endpoint or a test double); verification stays on. */
  tls,
  /** Skip the authority's instance discovery (a private authority, e.g. a test double). */
  disableInstanceDiscovery: bool(false),
  /** POST .../jobs/{jobId}/restart after the switch (clears a quarantine left by the old token). */
  restart: bool(false),
  timeout: v.optional(duration, '15s'),
  /** Attempts after a 429/503 (Retry-After honoured), each wait at most maxRetryDelay. */
  retries: v.optional(int(0, 10), 4),
  maxRetryDelay: v.optional(duration, '30s'),
  /** How far back `test`/`status` read provisioning logs for failed credential validations. */
  auditWindow: v.optional(duration, '24h'),
});
const oktaConsumer = v.strictObject({
  type: v.literal('okta'),
  name: consumerName,
  /** https://YOUR-ORG.okta.com */
  orgUrl: v.string(),
  appId: v.pipe(v.string(), v.minLength(1, 'must not be empty')),
  /** An Okta API token (SSWS) allowed to manage the app's connection. */
  apiTokenRef: secretRef,
  /** The SCIM base URL Okta is told; default: the key's target url. */
  baseUrl: v.optional(v.string()),
  tls,
  allowInsecureHttp: bool(false),
  timeout: v.optional(duration, '15s'),
  retries: v.optional(int(0, 10), 4),
  maxRetryDelay: v.optional(duration, '30s'),
});
const fileConsumer = v.strictObject({
  type: v.literal('file'),
  name: consumerName,
  /** Written atomically with mode 0600. */
  path: filePath,
  /** Numeric uid (and gid) to chown the file to; needs the privilege to do so. */
  owner: v.optional(v.strictObject({ uid: int(0, 4294967294), gid: v.optional(int(0, 4294967294)) })),
});
const execConsumer = v.strictObject({
  type: v.literal('exec'),
  name: consumerName,
  /** Receives the value on stdin; PROVKEY_ACTION=validate|switch|prove|check (see docs/consumers.md). */
  command: v.pipe(v.array(v.pipe(v.string(), v.minLength(1, 'must not be empty'))), v.minLength(1)),
  timeout: v.optional(duration, '30s'),
  passEnv: v.optional(v.array(v.string()), []),
});
const storeConsumer = v.strictObject({
  type: v.literal('store'),
  name: consumerName,
  /**
   * How provkey learns the consumer has picked up the new version: a URL answering 200 with the
   * fingerprint in its body, or a command exiting 0 for PROVKEY_FINGERPRINT. None: no proof.
   */
  probe: v.optional(
    v.union([
      v.strictObject({ url: v.string(), tls, allowInsecureHttp: bool(false) }),
      v.strictObject({ command: v.pipe(v.array(v.pipe(v.string(), v.minLength(1, 'must not be empty'))), v.minLength(1)), passEnv: v.optional(v.array(v.string()), []) }),
    ]),
  ),
  /** How long to wait for the probe to see the new fingerprint. */
  timeout: v.optional(duration, '60s'),
});
export const consumerSchema = v.variant('type', [entraConsumer, oktaConsumer, fileConsumer, execConsumer, storeConsumer]);

const rotation = v.strictObject({
  interval: v.optional(duration, '30d'),
  /** How long the previous version stays accepted after a rotation; "0" for none. */
  grace: v.optional(duration, '24h'),
});

const keySchema = v.strictObject({
  description: v.optional(v.string()),
  store: v.optional(name),
  format: v.optional(formatSchema, { type: 'token' }),
  rotation: v.optional(rotation, {}),
  target: targetSchema,
  consumers: v.optional(v.array(consumerSchema), []),
});

/** A Standard Webhooks receiver told of rotations, revokes, drills and keys coming due (docs/observability.md). */
const webhook = v.strictObject({
  url: v.string(),
  /** Resolves to the signing secret, "whsec_" + base64. */
  secretRef,
  /** Only these events (default: all). */
  events: v.optional(v.pipe(v.array(v.picklist(WEBHOOK_EVENTS)), v.minLength(1))),
  /** key.due_soon fires when the next rotation is closer than this. */
  dueWithin: v.optional(duration, '7d'),
  timeout: v.optional(duration, '10s'),
  retries: v.optional(int(0, 10), 3),
  allowInsecureHttp: bool(false),
});

export const configSchema = v.strictObject({
  version: v.optional(v.literal(1), 1),
  defaults: v.optional(v.strictObject({ store: v.optional(name, 'default'), concurrency: v.optional(int(1, 64), 4) }), {}),
  stores: v.optional(v.record(name, storeSchema), {}),
  audit: v.optional(
    v.strictObject({
      /** Default: audit.jsonl in the state dir (config/load.ts). */
      path: v.optional(filePath),
      /** A second place (another volume) holding the log's head: a cut or put-back log is found (docs/security.md). */
      anchor: v.optional(filePath),
    }),
    {},
  ),
  keys: v.optional(v.record(name, keySchema), {}),
  notify: v.optional(v.strictObject({ webhooks: v.optional(v.array(webhook), []) }), {}),
});

export type RawConfig = v.InferOutput<typeof configSchema>;
/** A file store as the config states it: paths may be left to the state dir. */
export type RawFileStoreConfig = v.InferOutput<typeof fileStore>;
/** A file store after config/load.ts: both paths resolved (absolute, or relative to the config dir). */
export type FileStoreConfig = RawFileStoreConfig & { path: string; keyFile: string };
export type StoreConfig = FileStoreConfig | VaultStoreConfig | AzureStoreConfig;
export type VaultStoreConfig = v.InferOutput<typeof vaultStore>;
export type AzureStoreConfig = v.InferOutput<typeof azureStore>;
export type TargetConfig = v.InferOutput<typeof targetSchema>;
export type ScimTargetConfig = v.InferOutput<typeof scimTarget>;
export type LdapTargetConfig = v.InferOutput<typeof ldapTarget>;
export type KeyConfig = v.InferOutput<typeof keySchema>;
export type ConsumerConfig = v.InferOutput<typeof consumerSchema>;
export type EntraConsumerConfig = v.InferOutput<typeof entraConsumer>;
export type OktaConsumerConfig = v.InferOutput<typeof oktaConsumer>;
export type FileConsumerConfig = v.InferOutput<typeof fileConsumer>;
export type ExecConsumerConfig = v.InferOutput<typeof execConsumer>;
export type StoreConsumerConfig = v.InferOutput<typeof storeConsumer>;
export type WebhookConfig = v.InferOutput<typeof webhook>;
