// The adapters the fault matrix runs against, each with a fixture factory for its REAL server.
// A new store or target joins the matrix by adding one entry here: no new test code.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from 'ldapts';
import { storedPasswordMatches } from '../../../src/targets/ldap/password-hash.ts';
import { PROBE_PREFIX } from '../../../src/targets/ldap/write-probe.ts';
import { bearerStatus } from '../cli.ts';
import { startGraphSynchronizationDouble } from '../graph-synchronization-double.ts';
import { startOktaConnectionsDouble } from '../okta-connections-double.ts';
import { CLIENT_SECRET_ENV, DOCUMENTED_PERMISSIONS, emulatorTierSkipReason, startAzureTier } from '../servers/azure-fixture.ts';
import { startDirsrv } from '../servers/dirsrv.ts';
import { startOpenBao } from '../servers/openbao.ts';
import { replace, startSamba } from '../servers/samba.ts';
import { sha256Hex, startScimServer } from '../servers/scim.ts';
import { defaultAcl, probeBind, STAGING_ACL, STAGING_LDIF, randomPassword, slapdFailedBinds, startSlapd, type SlapdServer } from '../servers/slapd.ts';

/** A running store backend: the YAML of one store entry for a case, and secrets the scan must know. */
export interface StoreFixture {
  /** YAML flow map of a store named `name` for case `caseId` (a fresh namespace per case). */
  storeConfig(caseId: string, name: string): string;
  secrets: string[];
  stop(): Promise<void>;
}

export interface TargetFixture {
  /** YAML lines under `target:` (indented by the caller). */
  targetConfig(): string[];
  secrets: string[];
  /** Whether the real server accepts `value` right now. */
  accepts(value: string): Promise<boolean>;
  /** A snapshot of what the server accepts, to tell what a case added. */
  acceptedSnapshot(): Promise<string[]>;
  /** Credentials the server accepts now that were not in `before` and are not among `live` values. */
  unknownAccepted(before: string[], live: string[]): Promise<string[]>;
  /** Failed binds (or refused credentials) the server itself counted since `mark()`. */
  mark(): Promise<unknown>;
  failedSince(mark: unknown): Promise<number>;
  /** The account is locked by the server's own policy. */
  locked(): Promise<boolean>;
  /** Failed binds one provkey run may spend (the documented budget); Infinity when a refusal costs nothing. */
  failedBindBudgetPerRun: number;
  /**
   * What the write probe (drills) left on the real server: entries / users with the probe's
   * name (and group memberships of them). `current` is a credential the server accepts now.
   */
  probeLeftovers?(current: string): Promise<string[]>;
  stop(): Promise<void>;
}

/** A consumer of the key (docs/consumers.md) and the real (or double) service behind it. */
export interface ConsumerFixture {
  /** YAML lines of one item under `consumers:` (indented by the caller), for case `caseId`. */
  consumerConfig(caseId: string): string[];
  secrets: string[];
  /** Whether the consumer holds (and works with) exactly `value` now, for case `caseId`. */
  holds(caseId: string, value: string): Promise<boolean>;
  stop(): Promise<void>;
}

export interface ConsumerAdapter {
  name: string;
  /** The target types it can present a key to (entra: a SCIM token). */
  targets: string[];
  start(): Promise<ConsumerFixture>;
}

export interface StoreAdapter {
  name: string;
  /** Cases run per combination in the CI sample when PROVKEY_FAULT_SAMPLE does not say (default 5): for a slow backend. */
  sample?: number;
  start(): Promise<StoreFixture>;
}

/**
 * Azure Key Vault: against the third-party emulator pair when PROVKEY_TEST_AZURE_KV_EMULATOR /
 * PROVKEY_TEST_ENTRA_EMULATOR name its binaries, else against the Key Vault protocol double
 * (what CI runs), as a principal holding exactly the documented permissions. The double runs
 * with its strict clock (each new version of a secret a later createdOn second), so the store
 * decides forks without its one-second settle (`emulator.strictlyIncreasingCreatedOn`, checked
 * on every listing). The emulator makes no such promise: there every state write waits the
 * real settle, so its sample is one case per combination (the double's: three).
 */
function azureAdapter(): StoreAdapter {
  const emulator = emulatorTierSkipReason() === undefined;
  return {
    name: emulator ? 'azure-emulator' : 'azure-double',
    // CI budget: the double adds about 2 minutes at 3 cases per combination (5 targets × 7 operations).
    sample: emulator ? 1 : 3,
    async start() {
      const tier = await startAzureTier(emulator ? 'emulator' : 'double', { strictClock: true });
      await tier.restrict(DOCUMENTED_PERMISSIONS);
      // In-process runs read the client secret from this process's environment, as the CLI would.
      process.env[CLIENT_SECRET_ENV] = tier.clientSecret;
      return {
        storeConfig: (caseId, name) => JSON.stringify(tier.storeSection({ secretPrefix: `c${caseId}-${name}-` })),
        secrets: [tier.clientSecret, tier.identity.header],
        stop: () => tier.stop(),
      };
    },
  };
}
export interface TargetAdapter {
  name: string;
  /**
   * Cases per combination in the CI sample (default: PROVKEY_FAULT_SAMPLE, else 5). Slower
   * directories sample fewer; PROVKEY_FAULT_SAMPLE set explicitly, or the full matrix, overrides it.
   */
  sample?: number;
  start(): Promise<TargetFixture>;
}

export const STORE_ADAPTERS: StoreAdapter[] = [
  {
    name: 'file',
    async start() {
      return {
        storeConfig: (_caseId, name) => `{ type: file, path: ${name}.enc, keyFile: ${name}.key }`,
        secrets: [],
        stop: async () => {},
      };
    },
  },
  {
    name: 'vault',
    async start() {
      const bao = await startOpenBao();
      await bao.enableKv2('fm');
      // In-process runs read VAULT_TOKEN from this process's environment, as the CLI would.
      process.env.VAULT_TOKEN = bao.rootToken;
      return {
        storeConfig: (caseId, name) => `{ type: vault, address: "${bao.addr}", mount: fm, prefix: "c${caseId}-${name}", timeout: 5s }`,
        secrets: [bao.rootToken],
        stop: () => bao.stop(),
      };
    },
  },
  azureAdapter(),
];

const SCIM_ADMIN_ENV = 'FM_SCIM_ADMIN_TOKEN';
const LDAP_ADMIN_ENV = 'FM_LDAP_ADMIN_PASSWORD';
const LDAP_TWO_ADMIN_ENV = 'FM_LDAP_TWO_ADMIN_PASSWORD';
const AD_ADMIN_ENV = 'FM_AD_ADMIN_PASSWORD';
const AD_TWO_ADMIN_ENV = 'FM_AD_TWO_ADMIN_PASSWORD';
const DS_ADMIN_ENV = 'FM_DS_ADMIN_PASSWORD';
const DS_TWO_ADMIN_ENV = 'FM_DS_TWO_ADMIN_PASSWORD';

export const TARGET_ADAPTERS: TargetAdapter[] = [
  {
    name: 'scim',
    async start() {
      const adminToken = `scim-admin-${sha256Hex(`${process.pid}-${Date.now()}-fm`).slice(0, 32)}`;
      process.env[SCIM_ADMIN_ENV] = adminToken;
      const server = await startScimServer({ adminToken, propagationMs: 0 });
      return {
        targetConfig: () => [
          'type: scim',
          `url: ${JSON.stringify(server.url)}`,
          'propagationTimeout: 1s',
          'requestTimeout: 5s',
          `applier: { type: http, url: ${JSON.stringify(server.adminUrl)}, authRef: "env:${SCIM_ADMIN_ENV}" }`,
        ],
        secrets: [adminToken],
        accepts: async (value) => (await bearerStatus(server.url, value)) === 200,
        acceptedSnapshot: () => server.acceptedDigests(),
        async unknownAccepted(before, live) {
          const known = new Set([...before, ...live.map(sha256Hex)]);
          return (await server.acceptedDigests()).filter((d) => !known.has(d));
        },
        // A refused bearer token costs nothing at a SCIM app.
        mark: async () => undefined,
        failedSince: async () => 0,
        locked: async () => false,
        failedBindBudgetPerRun: Number.POSITIVE_INFINITY,
        probeLeftovers: (current) => scimProbeUsers(server.url, current),
        stop: () => server.stop(),
      };
    },
  },
  {
    name: 'ldap',
    async start() {
      // With a staging OU and a group the service account may write: drills run the write probe.
      const srv = await startSlapd({ debugLevel: 'stats', acl: STAGING_ACL + defaultAcl('manage'), extraLdif: STAGING_LDIF });
      process.env[LDAP_ADMIN_ENV] = srv.provkeyAdminPassword;
      const staging = `ou=staging,${srv.baseDn}`;
      const group = `cn=provisioned,ou=groups,${srv.baseDn}`;
      return {
        targetConfig: () => [
          'type: ldap',
          `urls: [${srv.ldapUrl}]`,
          `tls: { caFile: ${srv.caFile} }`,
          `bindDn: "${srv.serviceDn}"`,
          `searchBase: "${srv.peopleDn}"`,
          `apply: { mode: admin, adminDn: "${srv.provkeyAdminDn}", adminPasswordRef: "env:${LDAP_ADMIN_ENV}" }`,
          `writeProbe: { base: "${staging}", group: "${group}" }`,
          'propagationTimeout: 1s',
        ],
        secrets: [srv.provkeyAdminPassword, srv.adminPassword, srv.servicePassword],
        accepts: async (value) => (await probeBind(srv.ldapPort, srv.serviceDn, value)) === 0,
        acceptedSnapshot: async () => [],
        // One password per account: once the current one binds, no other version can.
        unknownAccepted: async () => [],
        // Failed binds as the service account that slapd itself logged.
        mark: () => slapdFailedBinds(srv, srv.serviceDn),
        failedSince: async (mark) => (await slapdFailedBinds(srv, srv.serviceDn)) - (mark as number),
        locked: async () => (await slapdLocked(srv, srv.serviceDn)),
        // docs: at most one failed bind per server per run.
        failedBindBudgetPerRun: 1,
        probeLeftovers: () => slapdProbeLeftovers(srv, staging, group),
        stop: () => srv.stop(),
      };
    },
  },
  {
    // Two-account (blue/green) rotation on slapd: the key's versions alternate between two accounts.
    name: 'ldap-two-accounts',
    sample: 2,
    async start() {
      const srv = await startSlapd({ debugLevel: 'stats' });
      process.env[LDAP_TWO_ADMIN_ENV] = srv.provkeyAdminPassword;
      const accounts = [srv.serviceDn, srv.serviceGreenDn];
      const failed = async () => (await Promise.all(accounts.map((dn) => slapdFailedBinds(srv, dn)))).reduce((a, b) => a + b, 0);
      return {
        targetConfig: () => [
          'type: ldap',
          `urls: [${srv.ldapUrl}]`,
          `tls: { caFile: ${srv.caFile} }`,
          `accounts: ["${srv.serviceDn}", "${srv.serviceGreenDn}"]`,
          `searchBase: "${srv.peopleDn}"`,
          `apply: { mode: admin, adminDn: "${srv.provkeyAdminDn}", adminPasswordRef: "env:${LDAP_TWO_ADMIN_ENV}" }`,
          'propagationTimeout: 1s',
        ],
        secrets: [srv.provkeyAdminPassword, srv.adminPassword, srv.servicePassword],
        // The account is found from the stored hash (read as the rootdn, checked locally), so the
        // check spends no failed bind on the other account; then a real bind proves it.
        async accepts(value) {
          for (const dn of accounts) {
            const stored = await slapdUserPasswords(srv, dn);
            if (storedPasswordMatches(value, stored) === true) return (await probeBind(srv.ldapPort, dn, value)) === 0;
          }
          return false;
        },
        acceptedSnapshot: async () => [],
        // Each account has one password; the one not in use is unknown to everyone after a grace end.
        unknownAccepted: async () => [],
        mark: () => failed(),
        failedSince: async (mark) => (await failed()) - (mark as number),
        locked: async () => (await Promise.all(accounts.map((dn) => slapdLocked(srv, dn)))).some(Boolean),
        // docs: at most one failed bind per server per run, on each of the two accounts.
        failedBindBudgetPerRun: 2,
        stop: () => srv.stop(),
      };
    },
  },
  {
    // Two-account (blue/green) rotation on Samba AD DC: the same cases as ldap-two-accounts, with
    // AD's own answers (unicodePwd resets, the n-2 rule). Failed binds: those the DC itself counted
    // on either account (its audit log); lockoutThreshold 6 as for samba-ad.
    name: 'samba-ad-two-accounts',
    sample: 1,
    async start() {
      const dc = await startSamba({ oldPasswordAllowedPeriod: 0, countFailedBinds: true });
      await dc.modify(dc.baseDn, [replace('lockoutThreshold', ['6'])]);
      const initial = [`Pk-${randomPassword(20)}`, `Pk-${randomPassword(20)}`];
      const accounts = [await dc.createUser('svc-fm-blue', initial[0]!), await dc.createUser('svc-fm-green', initial[1]!)];
      const ownFailures = [0, 0];
      process.env[AD_TWO_ADMIN_ENV] = dc.adminPassword;
      const counted = async () => Promise.all(accounts.map((dn) => dc.countedFailures(dn)));
      return {
        targetConfig: () => [
          'type: ldap',
          'directory: activeDirectory',
          `urls: [${dc.ldapsUrl}]`,
          `tls: { caFile: ${dc.caFile} }`,
          `accounts: ["${accounts[0]}", "${accounts[1]}"]`,
          `searchBase: "${dc.usersDn}"`,
          `apply: { mode: admin, adminDn: "${dc.adminDn}", adminPasswordRef: "env:${AD_TWO_ADMIN_ENV}" }`,
          'oldPasswordAllowedPeriod: 0s',
          'propagationTimeout: 1s',
        ],
        secrets: [dc.adminPassword, ...initial],
        // AD's password hashes cannot be read and checked here: a bind on each account. The harness's
        // own refused binds are counted, so failedSince charges provkey only with its own.
        async accepts(value) {
          for (const dn of accounts) {
            const { code } = await dc.bindCode(dn, value);
            if (code === 0) return true;
            if (code === 49) ownFailures[accounts.indexOf(dn)]!++;
          }
          return false;
        },
        acceptedSnapshot: async () => [],
        unknownAccepted: async () => [],
        mark: async () => ({ counts: await counted(), own: [...ownFailures] }),
        // Counted by the DC itself (its audit log of badPwdCount increments), less the harness's own refused binds.
        async failedSince(mark) {
          const before = mark as { counts: number[]; own: number[] };
          const now = await counted();
          return now.reduce((sum, n, i) => sum + Math.max(0, n - before.counts[i]! - (ownFailures[i]! - before.own[i]!)), 0);
        },
        // UF_LOCKOUT in msDS-User-Account-Control-Computed (as for samba-ad).
        locked: async () => (await Promise.all(accounts.map(async (dn) => (Number((await dc.read(dn, ['msDS-User-Account-Control-Computed']))['msDS-User-Account-Control-Computed'][0] ?? '0') & 0x10) !== 0))).some(Boolean),
        // docs: at most one failed bind per server per run, on each of the two accounts.
        failedBindBudgetPerRun: 2,
        stop: () => dc.stop(),
      };
    },
  },
  {
    // Samba AD DC (directory: activeDirectory). Failed binds are the DC's own badPwdCount (what
    // counts toward lockoutThreshold: AD does not count the two previous passwords); lockoutThreshold 6
    // lets provkey's lockout guard spend its one proof per run (at 3 it forbids every proof).
    name: 'samba-ad',
    sample: 2,
    async start() {
      const dc = await startSamba({ oldPasswordAllowedPeriod: 0, countFailedBinds: true });
      await dc.modify(dc.baseDn, [replace('lockoutThreshold', ['6'])]);
      const initial = `Pk-${randomPassword(20)}`;
      const dn = await dc.createUser('svc-fm', initial);
      process.env[AD_ADMIN_ENV] = dc.adminPassword;
      return {
        targetConfig: () => [
          'type: ldap',
          'directory: activeDirectory',
          `urls: [${dc.ldapsUrl}]`,
          `tls: { caFile: ${dc.caFile} }`,
          `bindDn: "${dn}"`,
          `searchBase: "${dc.usersDn}"`,
          `apply: { mode: admin, adminDn: "${dc.adminDn}", adminPasswordRef: "env:${AD_ADMIN_ENV}" }`,
          'rollback: admin-reset',
          'oldPasswordAllowedPeriod: 0s',
          'propagationTimeout: 1s',
        ],
        secrets: [dc.adminPassword, initial],
        accepts: async (value) => (await dc.bindCode(dn, value)).code === 0,
        acceptedSnapshot: async () => [],
        unknownAccepted: async () => [],
        mark: () => dc.countedFailures(dn),
        failedSince: async (mark) => (await dc.countedFailures(dn)) - (mark as number),
        // UF_LOCKOUT in msDS-User-Account-Control-Computed: lockoutTime stays set after lockoutDuration ends.
        locked: async () => (Number((await dc.read(dn, ['msDS-User-Account-Control-Computed']))['msDS-User-Account-Control-Computed'][0] ?? '0') & 0x10) !== 0,
        failedBindBudgetPerRun: 1,
        stop: () => dc.stop(),
      };
    },
  },
  {
    // 389 Directory Server (directory: 389ds): failed binds from its own access log.
    name: '389-ds',
    sample: 2,
    async start() {
      // passwordMaxFailure 6: the lockout guard allows its one proof per run. The account is uid=fm (cn, sn
      // fm): two letters have no three-letter run for passwordMinTokenLength 3 to refuse, whatever the
      // matrix's format draws (the rule itself has its own tests). The instance's DEFAULT
      // passwordStorageScheme (PBKDF2-SHA512 on 2.3), as real 389-DS / RHDS / FreeIPA deployments
      // run it: identify checks the stored hash locally as the admin (pbkdf2-hash.ts).
      const ds = await startDirsrv({ policy: { passwordMaxFailure: '6' } });
      const scheme = (await ds.read('cn=config', ['passwordStorageScheme'])).passwordStorageScheme?.[0];
      if (!scheme?.toUpperCase().startsWith('PBKDF2')) throw new Error(`389-DS default passwordStorageScheme is ${scheme}, not a PBKDF2 scheme: the matrix entry no longer tests the default`);
      const initial = `Pk-${randomPassword(20)}`;
      const dn = await ds.addServiceAccount('fm', initial);
      process.env[DS_ADMIN_ENV] = ds.provkeyAdminPassword;
      return {
        targetConfig: () => [
          'type: ldap',
          'directory: 389ds',
          `urls: [${ds.ldapsUrl}]`,
          `tls: { caFile: ${ds.caFile} }`,
          `bindDn: "${dn}"`,
          `searchBase: "${ds.peopleDn}"`,
          `apply: { mode: admin, adminDn: "${ds.provkeyAdminDn}", adminPasswordRef: "env:${DS_ADMIN_ENV}" }`,
          'rollback: admin-reset',
          // cn=config is readable by Directory Manager only: the documented set-up states the limit.
          'passwordPolicy: { maxFailure: 6 }',
          'propagationTimeout: 1s',
        ],
        secrets: [ds.provkeyAdminPassword, ds.adminPassword, ds.servicePassword, initial],
        accepts: async (value) => (await ds.bindCode(dn, value)) === 0,
        acceptedSnapshot: async () => [],
        unknownAccepted: async () => [],
        mark: () => ds.failedBinds(dn),
        failedSince: async (mark) => (await ds.failedBinds(dn)) - (mark as number),
        locked: async () => ((await ds.read(dn, ['accountUnlockTime'])).accountUnlockTime ?? []).length > 0,
        failedBindBudgetPerRun: 1,
        stop: () => ds.stop(),
      };
    },
  },
  {
    // Two-account (blue/green) rotation on 389-DS: accounts uid=fm and uid=fg (two letters: no
    // three-letter run for passwordMinTokenLength), SSHA512 so the stored hash answers identify and
    // the harness's own checks (read as Directory Manager, checked locally: no failed bind).
    name: '389-ds-two-accounts',
    sample: 1,
    async start() {
      const ds = await startDirsrv({ policy: { passwordMaxFailure: '6', passwordStorageScheme: 'SSHA512' } });
      const initial = [`Pk-${randomPassword(20)}`, `Pk-${randomPassword(20)}`];
      const accounts = [await ds.addServiceAccount('fm', initial[0]!), await ds.addServiceAccount('fg', initial[1]!)];
      process.env[DS_TWO_ADMIN_ENV] = ds.provkeyAdminPassword;
      const failed = async () => (await Promise.all(accounts.map((dn) => ds.failedBinds(dn)))).reduce((a, b) => a + b, 0);
      return {
        targetConfig: () => [
          'type: ldap',
          'directory: 389ds',
          `urls: [${ds.ldapsUrl}]`,
          `tls: { caFile: ${ds.caFile} }`,
          `accounts: ["${accounts[0]}", "${accounts[1]}"]`,
          `searchBase: "${ds.peopleDn}"`,
          `apply: { mode: admin, adminDn: "${ds.provkeyAdminDn}", adminPasswordRef: "env:${DS_TWO_ADMIN_ENV}" }`,
          'rollback: admin-reset',
          'passwordPolicy: { maxFailure: 6 }',
          'propagationTimeout: 1s',
        ],
        secrets: [ds.provkeyAdminPassword, ds.adminPassword, ds.servicePassword, ...initial],
        async accepts(value) {
          for (const dn of accounts) {
            const stored = (await ds.read(dn, ['userPassword'])).userPassword ?? [];
            if (storedPasswordMatches(value, stored) === true) return (await ds.bindCode(dn, value)) === 0;
          }
          return false;
        },
        acceptedSnapshot: async () => [],
        unknownAccepted: async () => [],
        mark: () => failed(),
        failedSince: async (mark) => (await failed()) - (mark as number),
        locked: async () => (await Promise.all(accounts.map(async (dn) => ((await ds.read(dn, ['accountUnlockTime'])).accountUnlockTime ?? []).length > 0))).some(Boolean),
        // docs: at most one failed bind per server per run, on each of the two accounts.
        failedBindBudgetPerRun: 2,
        stop: () => ds.stop(),
      };
    },
  },
];

const GRAPH_SECRET_ENV = 'FM_GRAPH_CLIENT_SECRET';
const OKTA_TOKEN_ENV = 'FM_OKTA_API_TOKEN';
const EXEC_CONSUMER_HOOK = fileURLToPath(new URL('../consumers/exec-consumer-hook.ts', import.meta.url));

/** Read a consumer's file, or undefined when it is not there. */
function readIfThere(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * The consumer dimension of the matrix: each runs with the scim target (and the ldap one where it
 * applies) on the file store; after every case the consumer must hold the key's current version.
 */
export const CONSUMER_ADAPTERS: ConsumerAdapter[] = [
  {
    name: 'entra',
    targets: ['scim'],
    async start() {
      const graph = await startGraphSynchronizationDouble();
      const clientId = '2d4f6a8c-1b3d-4e5f-8a7b-9c0d1e2f3a4b';
      const secret = `fm-graph-${sha256Hex(`${process.pid}-${Date.now()}-graph`).slice(0, 32)}`;
      graph.addClient(clientId, secret, ['Synchronization.ReadWrite.All', 'AuditLog.Read.All']);
      process.env[GRAPH_SECRET_ENV] = secret;
      return {
        consumerConfig: () => [
          'type: entra',
          `servicePrincipalId: ${JSON.stringify(graph.servicePrincipalId)}`,
          `jobId: ${JSON.stringify(graph.jobId)}`,
          `graphUrl: ${JSON.stringify(graph.graphUrl)}`,
          `authorityHost: ${JSON.stringify(graph.authorityHost)}`,
          'disableInstanceDiscovery: true',
          `tls: { caFile: ${JSON.stringify(graph.caFile)} }`,
          `auth: { method: clientSecret, tenantId: ${JSON.stringify(graph.tenantId)}, clientId: ${JSON.stringify(clientId)}, clientSecretRef: "env:${GRAPH_SECRET_ENV}" }`,
          'retries: 1',
          'maxRetryDelay: 1s',
        ],
        secrets: [secret],
        // The job holds the value, and a provisioning cycle with it succeeds against the real SCIM app.
        holds: async (_caseId, value) => graph.savedToken() === value && (await graph.runCycle()) === 'success',
        stop: () => graph.stop(),
      };
    },
  },
  {
    name: 'okta',
    targets: ['scim'],
    async start() {
      const okta = await startOktaConnectionsDouble();
      process.env[OKTA_TOKEN_ENV] = okta.apiToken;
      return {
        consumerConfig: () => ['type: okta', `orgUrl: ${JSON.stringify(okta.orgUrl)}`, `appId: ${JSON.stringify(okta.appId)}`, `apiTokenRef: "env:${OKTA_TOKEN_ENV}"`, 'retries: 1', 'maxRetryDelay: 1s'],
        secrets: [okta.apiToken, okta.readOnlyToken],
        holds: async (_caseId, value) => okta.connectionToken() === value && okta.status() === 'ENABLED',
        stop: () => okta.stop(),
      };
    },
  },
  {
    name: 'file',
    targets: ['scim', 'ldap'],
    async start() {
      const dir = mkdtempSync(path.join(tmpdir(), 'provkey-fm-file-consumer-'));
      const fileOf = (caseId: string) => path.join(dir, `${caseId}.token`);
      return {
        consumerConfig: (caseId) => ['type: file', `path: ${JSON.stringify(fileOf(caseId))}`],
        secrets: [],
        holds: async (caseId, value) => readIfThere(fileOf(caseId)) === value,
        stop: async () => rmSync(dir, { recursive: true, force: true }),
      };
    },
  },
  {
    name: 'exec',
    targets: ['scim', 'ldap'],
    async start() {
      const dir = mkdtempSync(path.join(tmpdir(), 'provkey-fm-exec-consumer-'));
      const fileOf = (caseId: string) => path.join(dir, `${caseId}.state`);
      return {
        consumerConfig: (caseId) => ['type: exec', `command: ${JSON.stringify([process.execPath, EXEC_CONSUMER_HOOK, fileOf(caseId)])}`, 'timeout: 10s'],
        secrets: [],
        holds: async (caseId, value) => readIfThere(fileOf(caseId)) === value,
        stop: async () => rmSync(dir, { recursive: true, force: true }),
      };
    },
  },
];


/** Probe entries under the staging OU, and members of the group that are probe entries, as the rootdn sees them. */
async function slapdProbeLeftovers(srv: SlapdServer, staging: string, group: string): Promise<string[]> {
  const client = new Client({ url: srv.ldapUrl, timeout: 5000 });
  try {
    await client.startTLS({ ca: [srv.caPem], host: '127.0.0.1' });
    await client.bind(srv.adminDn, srv.adminPassword);
    const entries = (await client.search(staging, { scope: 'one', filter: `(cn=${PROBE_PREFIX}*)`, attributes: ['1.1'] })).searchEntries.map((e) => e.dn);
    const members = ([] as unknown[]).concat((await client.search(group, { scope: 'base', attributes: ['member'] })).searchEntries[0]?.member ?? []).map(String);
    return [...entries, ...members.filter((m) => m.toLowerCase().startsWith(`cn=${PROBE_PREFIX}`)).map((m) => `member ${m} of ${group}`)];
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

/** Users whose userName has the SCIM write probe's prefix, asked through the app's own SCIM API. */
async function scimProbeUsers(url: string, token: string): Promise<string[]> {
  const query = new URLSearchParams({ filter: `userName sw "${PROBE_PREFIX}"` });
  const reply = await fetch(`${url}/Users?${query}`, { headers: { authorization: `Bearer ${token}` } });
  if (reply.status !== 200) throw new Error(`listing probe users: HTTP ${reply.status}`);
  const body = (await reply.json()) as { Resources?: Array<{ userName?: string }> };
  return (body.Resources ?? []).map((u) => String(u.userName)).filter((n) => n.startsWith(PROBE_PREFIX));
}

/** Attributes of one slapd entry as the rootdn (ACLs bypassed). */
async function slapdRead(srv: SlapdServer, dn: string, attributes: string[]): Promise<Record<string, unknown>> {
  const client = new Client({ url: srv.ldapUrl, timeout: 5000 });
  try {
    await client.startTLS({ ca: [srv.caPem], host: '127.0.0.1' });
    await client.bind(srv.adminDn, srv.adminPassword);
    return (await client.search(dn, { scope: 'base', attributes })).searchEntries[0] ?? {};
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

async function slapdLocked(srv: SlapdServer, dn: string): Promise<boolean> {
  return ([] as unknown[]).concat((await slapdRead(srv, dn, ['pwdAccountLockedTime'])).pwdAccountLockedTime ?? []).length > 0;
}

async function slapdUserPasswords(srv: SlapdServer, dn: string): Promise<string[]> {
  const values = ([] as unknown[]).concat((await slapdRead(srv, dn, ['userPassword'])).userPassword ?? []);
  return values.map((v) => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v)));
}
