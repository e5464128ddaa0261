// The adapters the fault matrix runs against, each with a fixture factory for its REAL server.
// A new store or target joins the matrix by adding one entry here: no new test code.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from 'ldapts';
import { bearerStatus } from '../cli.ts';
import { startGraphSynchronizationDouble } from '../graph-synchronization-double.ts';
import { startOktaConnectionsDouble } from '../okta-connections-double.ts';
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
  start(): Promise<StoreFixture>;
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
