// The adapters the fault matrix runs against, each with a fixture factory for its REAL server.
// A new store or target joins the matrix by adding one entry here: no new test code.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Client } from 'ldapts';
import { bearerStatus } from '../cli.ts';
import { CLIENT_SECRET_ENV, DOCUMENTED_PERMISSIONS, emulatorTierSkipReason, startAzureTier } from '../servers/azure-fixture.ts';
import { startOpenBao } from '../servers/openbao.ts';
import { sha256Hex, startScimServer } from '../servers/scim.ts';
import { probeBind, startSlapd } from '../servers/slapd.ts';

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
  stop(): Promise<void>;
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
 * real settle, so its sample is one case per combination.
 */
function azureAdapter(): StoreAdapter {
  const emulator = emulatorTierSkipReason() === undefined;
  return {
    name: emulator ? 'azure-emulator' : 'azure-double',
    ...(emulator ? { sample: 1 } : {}),
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
        stop: () => server.stop(),
      };
    },
  },
  {
    name: 'ldap',
    async start() {
      const srv = await startSlapd({ debugLevel: 'stats' });
      process.env[LDAP_ADMIN_ENV] = srv.provkeyAdminPassword;
      const logFile = path.join(srv.dir, 'slapd.log');
      /**
       * Failed binds as the service account that slapd itself logged. The log is flushed every
       * 500 ms, so a marker (a failed bind as a DN that does not exist, never counted) is the
       * barrier: once it is in the file, everything before it is too.
       */
      const failedBinds = async (): Promise<number> => {
        const marker = `cn=fm-marker-${Date.now()}-${Math.random().toString(36).slice(2)},${srv.baseDn}`;
        await probeBind(srv.ldapPort, marker, 'not-a-password').catch(() => undefined);
        for (;;) {
          const log = await readFile(logFile, 'utf8').catch(() => '');
          if (log.includes(marker)) return countFailedBinds(log, srv.serviceDn);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      };
      const adminSearch = async (attributes: string[]): Promise<Record<string, unknown>> => {
        const client = new Client({ url: srv.ldapUrl, timeout: 5000 });
        try {
          await client.startTLS({ ca: [srv.caPem], host: '127.0.0.1' });
          await client.bind(srv.adminDn, srv.adminPassword);
          return (await client.search(srv.serviceDn, { scope: 'base', attributes })).searchEntries[0] ?? {};
        } finally {
          await client.unbind().catch(() => undefined);
        }
      };
      return {
        targetConfig: () => [
          'type: ldap',
          `urls: [${srv.ldapUrl}]`,
          `tls: { caFile: ${srv.caFile} }`,
          `bindDn: "${srv.serviceDn}"`,
          `searchBase: "${srv.peopleDn}"`,
          `apply: { mode: admin, adminDn: "${srv.provkeyAdminDn}", adminPasswordRef: "env:${LDAP_ADMIN_ENV}" }`,
          'propagationTimeout: 1s',
        ],
        secrets: [srv.provkeyAdminPassword, srv.adminPassword, srv.servicePassword],
        accepts: async (value) => (await probeBind(srv.ldapPort, srv.serviceDn, value)) === 0,
        acceptedSnapshot: async () => [],
        // One password per account: once the current one binds, no other version can.
        unknownAccepted: async () => [],
        mark: () => failedBinds(),
        failedSince: async (mark) => (await failedBinds()) - (mark as number),
        locked: async () => ([] as unknown[]).concat((await adminSearch(['pwdAccountLockedTime'])).pwdAccountLockedTime ?? []).length > 0,
        // docs: at most one failed bind per server per run.
        failedBindBudgetPerRun: 1,
        stop: () => srv.stop(),
      };
    },
  },
];

function countFailedBinds(log: string, serviceDn: string): number {
  const dnOf = new Map<string, string>();
  let failed = 0;
  for (const line of log.split('\n')) {
    const bind = /(conn=\d+ op=\d+) BIND dn="([^"]*)" method=128/.exec(line);
    if (bind) dnOf.set(bind[1]!, bind[2]!.toLowerCase());
    const refused = /(conn=\d+ op=\d+) RESULT tag=97 err=49\b/.exec(line);
    if (refused && dnOf.get(refused[1]!) === serviceDn.toLowerCase()) failed += 1;
  }
  return failed;
}
