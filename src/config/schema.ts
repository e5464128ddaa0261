import { z } from 'zod';

/**
 * The provkey.yaml schema. Durations stay strings here ("30d") and are parsed by
 * config/load.ts, so an error can name the exact field. Secret values never appear in the
 * config itself: fields ending in `Ref` hold a reference (env:NAME, file:/path, key:OTHER-KEY).
 */

const name = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'must be 1-63 chars of a-z, 0-9, ".", "_", "-", starting with a letter or digit');
/** "90s", "30d", … or 0. A bare number other than 0 is refused: seconds or days? */
const duration = z.union([z.string().min(1), z.literal(0).transform(() => '0')]);
const secretRef = z.string().regex(/^(env|file|key):.+/, 'must be a reference: env:NAME, file:/path or key:KEY-NAME');

const fileStore = z.strictObject({
  type: z.literal('file'),
  /** Encrypted store file, relative to the config file. */
  path: z.string().default('.provkey/store.enc'),
  /** 32-byte key file (mode 0600), created by `provkey init`. Ignored when passphraseEnv is set. */
  keyFile: z.string().default('.provkey/store.key'),
  /** Name of the environment variable holding a passphrase (scrypt-derived key) instead of a key file. */
  passphraseEnv: z.string().optional(),
});

const tls = z.strictObject({
  caFile: z.string().optional(),
  serverName: z.string().optional(),
});

const vaultAuth = z.discriminatedUnion('method', [
  z.strictObject({ method: z.literal('token'), tokenFile: z.string().optional() }),
  z.strictObject({
    method: z.literal('approle'),
    mount: z.string().default('approle'),
    roleIdFile: z.string().optional(),
    roleIdEnv: z.string().default('VAULT_ROLE_ID'),
    secretIdFile: z.string().optional(),
    secretIdEnv: z.string().default('VAULT_SECRET_ID'),
  }),
  z.strictObject({
    method: z.literal('kubernetes'),
    mount: z.string().default('kubernetes'),
    role: z.string(),
    jwtFile: z.string().default('/var/run/secrets/kubernetes.io/serviceaccount/token'),
  }),
]);

const vaultStore = z.strictObject({
  type: z.literal('vault'),
  /** e.g. https://vault.example.com:8200; defaults to VAULT_ADDR. */
  address: z.string().optional(),
  mount: z.string().default('secret'),
  prefix: z.string().default('provkey'),
  namespace: z.string().optional(),
  auth: vaultAuth.default({ method: 'token' }),
  tls: tls.default({}),
  /** Plain http:// is refused except to loopback unless this is true. */
  allowInsecureHttp: z.boolean().default(false),
  timeout: duration.default('10s'),
  /** Revoke destroys the version's data instead of soft-deleting it. */
  destroyOnRevoke: z.boolean().default(false),
});

const azureAuth = z.discriminatedUnion('method', [
  z.strictObject({ method: z.literal('default'), managedIdentityClientId: z.string().optional() }),
  z.strictObject({ method: z.literal('managedIdentity'), clientId: z.string().optional() }),
  z.strictObject({ method: z.literal('clientSecret'), tenantId: z.string(), clientId: z.string(), clientSecretRef: secretRef }),
  z.strictObject({ method: z.literal('certificate'), tenantId: z.string(), clientId: z.string(), certificatePath: z.string() }),
]);

const azureStore = z.strictObject({
  type: z.literal('azure'),
  vaultUrl: z.string(),
  /** Prepended to every secret name, e.g. "provkey-". */
  secretPrefix: z.string().default(''),
  auth: azureAuth.default({ method: 'default' }),
  /** Emulator-only settings (Lowkey Vault); never needed for a real Key Vault. */
  emulator: z
    .strictObject({
      caFile: z.string().optional(),
      disableChallengeResourceVerification: z.boolean().default(false),
    })
    .optional(),
});

export const storeSchema = z.discriminatedUnion('type', [fileStore, vaultStore, azureStore]);

const tokenFormat = z.strictObject({
  type: z.literal('token'),
  prefix: z.string().regex(/^[A-Za-z][A-Za-z0-9]{0,15}$/, 'must be 1-16 letters/digits starting with a letter').default('pk'),
  randomLength: z.number().int().min(8).max(256).default(43),
  allowWeak: z.boolean().default(false),
});
const passwordFormat = z.strictObject({
  type: z.literal('password'),
  length: z.number().int().min(8).max(256).default(32),
  lower: z.number().int().min(-1).default(1),
  upper: z.number().int().min(-1).default(1),
  digits: z.number().int().min(-1).default(1),
  symbols: z.number().int().min(-1).default(1),
  symbolSet: z.string().default('-_.:+=!@%^*'),
  exclude: z.string().default(''),
  allowWeak: z.boolean().default(false),
});
const bytesFormat = (type: 'base64url' | 'hex') =>
  z.strictObject({
    type: z.literal(type),
    bytes: z.number().int().min(8).max(1024).default(32),
    allowWeak: z.boolean().default(false),
  });
export const formatSchema = z.discriminatedUnion('type', [tokenFormat, passwordFormat, bytesFormat('base64url'), bytesFormat('hex')]);

const scimApplier = z.discriminatedUnion('type', [
  /** The app reads the store itself; provkey waits until the new version is accepted. */
  z.strictObject({ type: z.literal('store') }),
  /** A token endpoint: POST {"action","token","replaces"} with an admin bearer token. */
  z.strictObject({
    type: z.literal('http'),
    url: z.string(),
    authRef: secretRef,
    timeout: duration.default('10s'),
  }),
  /** A command that receives the token on stdin; PROVKEY_ACTION says apply, revoke or rollback. */
  z.strictObject({
    type: z.literal('exec'),
    command: z.array(z.string()).min(1),
    timeout: duration.default('30s'),
  }),
]);

const scimTarget = z.strictObject({
  type: z.literal('scim'),
  /** Base URL of the SCIM 2.0 endpoint, e.g. https://app.example.com/scim/v2 */
  url: z.string(),
  applier: scimApplier,
  propagationTimeout: duration.default('60s'),
  /** Run the write probe (create, patch, delete a throw-away user) on every test, not only drills. */
  writeProbe: z.boolean().default(false),
  allowInsecureHttp: z.boolean().default(false),
  tls: tls.default({}),
  requestTimeout: duration.default('10s'),
});

const ldapTarget = z.strictObject({
  type: z.literal('ldap'),
  /** One or more servers (ldaps:// or ldap:// with StartTLS); the test waits until every one accepts a change. */
  urls: z.array(z.string()).min(1),
  startTls: z.boolean().default(true),
  /** Plain LDAP without TLS: refused except to loopback unless true. */
  allowPlain: z.boolean().default(false),
  tls: tls.default({}),
  bindDn: z.string(),
  /** The provisioning base DN the connection test searches under. */
  searchBase: z.string(),
  searchFilter: z.string().default('(objectClass=*)'),
  apply: z
    .strictObject({
      mode: z.enum(['self', 'admin']).default('self'),
      adminDn: z.string().optional(),
      adminPasswordRef: secretRef.optional(),
    })
    .default({ mode: 'self' }),
  /** After a failed test: reset the old password as admin, or keep the new one if it binds. */
  rollback: z.enum(['admin-reset', 'keep-new']).default('keep-new'),
  revoke: z.strictObject({ lockAccount: z.boolean().default(false) }).default({ lockAccount: false }),
  /** The directory's password policy: read from the server where readable, else from here. */
  passwordPolicy: z
    .strictObject({
      dn: z.string().optional(),
      minLength: z.number().int().optional(),
      checkQuality: z.number().int().optional(),
      inHistory: z.number().int().optional(),
      maxAge: duration.optional(),
      maxFailure: z.number().int().optional(),
    })
    .default({}),
  /** Whether to prove the old password fails (costs one failed bind). */
  negativeProbe: z.enum(['auto', 'always', 'never']).default('auto'),
  propagationTimeout: duration.default('30s'),
  timeout: duration.default('10s'),
});

export const targetSchema = z.discriminatedUnion('type', [scimTarget, ldapTarget]);

const rotation = z.strictObject({
  interval: duration.default('30d'),
  /** How long the previous version stays accepted after a rotation; "0" for none. */
  grace: duration.default('24h'),
});

const keySchema = z.strictObject({
  description: z.string().optional(),
  store: name.optional(),
  format: formatSchema.default({ type: 'token', prefix: 'pk', randomLength: 43, allowWeak: false }),
  rotation: rotation.default({ interval: '30d', grace: '24h' }),
  target: targetSchema,
});

export const configSchema = z.strictObject({
  version: z.literal(1).default(1),
  defaults: z
    .strictObject({
      store: name.default('default'),
      concurrency: z.number().int().min(1).max(64).default(4),
    })
    .default({ store: 'default', concurrency: 4 }),
  stores: z.record(name, storeSchema).default({}),
  audit: z.strictObject({ path: z.string().default('.provkey/audit.jsonl') }).default({ path: '.provkey/audit.jsonl' }),
  keys: z.record(name, keySchema).default({}),
});

export type RawConfig = z.infer<typeof configSchema>;
export type StoreConfig = z.infer<typeof storeSchema>;
export type FileStoreConfig = z.infer<typeof fileStore>;
export type VaultStoreConfig = z.infer<typeof vaultStore>;
export type AzureStoreConfig = z.infer<typeof azureStore>;
export type TargetConfig = z.infer<typeof targetSchema>;
export type ScimTargetConfig = z.infer<typeof scimTarget>;
export type LdapTargetConfig = z.infer<typeof ldapTarget>;
export type KeyConfig = z.infer<typeof keySchema>;
