/**
 * The raw ceiling: the fastest a rotation batch could be, given the HTTP calls it makes. A
 * minimal script sends the very calls `provkey rotate --all` sent (the same methods, paths,
 * kinds of token and bodies, the same number per key, the same concurrency) with nothing else
 * around them: no store, no state machine, no audit log. Which calls provkey sent is not
 * assumed but read from the servers' own records (the SCIM app's request log, OpenBao's file
 * audit device); the ceiling's own calls are counted from the same records afterwards, so a
 * benchmark can show that both sides made the same calls.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import { scimRequests, type LoggedRequest } from '../harness/scim/request-log.ts';

/** Which credential a SCIM request carried, as the server's log shows it. */
export type ScimRole = 'new' | 'old' | 'admin' | 'wrong' | 'none';

/** One request line of the SCIM app's --log: the harness's own parser (test/harness/scim/request-log.ts). */
export type ScimLogged = LoggedRequest;
export { scimRequests };

/** One request OpenBao's audit device recorded (its `request` entries). */
export interface VaultLogged {
  operation: string;
  path: string;
}

/** A kind of call and how many of it the whole batch made. */
export interface CallGroup {
  server: 'scim' | 'vault';
  method: string;
  /** With `{key}` where the key's name was. */
  path: string;
  role: ScimRole | 'vault';
  count: number;
}

export const digestPrefix = (token: string) => createHash('sha256').update(token, 'utf8').digest('hex').slice(0, 8);

/** Classifies each logged SCIM request by the credential it carried. */
export function scimRoles(options: { adminToken: string; oldTokens: Iterable<string> }): (request: ScimLogged) => ScimRole {
  const admin = digestPrefix(options.adminToken);
  const old = new Set([...options.oldTokens].map(digestPrefix));
  return (request) => {
    if (request.token === '-') return 'none';
    if (request.token === admin) return 'admin';
    if (old.has(request.token)) return 'old';
    // Any other token: a new version when accepted, the wrong-token probe when refused.
    return request.status === 401 || request.status === 403 ? 'wrong' : 'new';
  };
}

/** The calls of a batch, grouped: what the ceiling replays, and what two runs are compared by. */
export function groupCalls(scim: ScimLogged[], roleOf: (r: ScimLogged) => ScimRole, vault: VaultLogged[], keys: string[]): CallGroup[] {
  const groups = new Map<string, CallGroup>();
  const add = (group: Omit<CallGroup, 'count'>) => {
    const id = `${group.server} ${group.method} ${group.path} ${group.role}`;
    const existing = groups.get(id);
    if (existing) existing.count++;
    else groups.set(id, { ...group, count: 1 });
  };
  for (const request of scim) add({ server: 'scim', method: request.method, path: request.path, role: roleOf(request) });
  const keyPattern = keyNamePattern(keys);
  for (const request of vault) add({ server: 'vault', method: vaultMethod(request.operation), path: request.path.replace(keyPattern, '{key}'), role: 'vault' });
  return [...groups.values()].sort((a, b) => `${a.server}${a.path}${a.method}${a.role}`.localeCompare(`${b.server}${b.path}${b.method}${b.role}`));
}

function keyNamePattern(keys: string[]): RegExp {
  // Bench key names share one shape (app-00042): match the shape, not 10,000 alternatives.
  const shapes = new Set(keys.map((k) => k.replace(/\d/g, '0')));
  const source = [...shapes].map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/0/g, '\\d')).join('|');
  return new RegExp(`(?<=/)(?:${source})(?=/|$)`);
}

function vaultMethod(operation: string): string {
  switch (operation) {
    case 'read':
      return 'GET';
    case 'list':
      return 'LIST';
    case 'delete':
      return 'DELETE';
    default:
      return 'POST'; // create, update
  }
}

/** Two batches made the same calls when every group has the same count. */
export function compareCalls(a: CallGroup[], b: CallGroup[]): string[] {
  const id = (g: CallGroup) => `${g.server} ${g.method} ${g.path} (${g.role})`;
  const counts = new Map<string, [number, number]>();
  for (const g of a) counts.set(id(g), [g.count, 0]);
  for (const g of b) counts.set(id(g), [counts.get(id(g))?.[0] ?? 0, g.count]);
  return [...counts].filter(([, [x, y]]) => x !== y).map(([name, [x, y]]) => `${name}: ${x} vs ${y}`);
}

export interface CeilingOptions {
  keys: string[];
  groups: CallGroup[];
  concurrency: number;
  scim: { origin: string; adminToken: string; oldTokens: Map<string, string> };
  vault?: { address: string; token: string };
}

/**
 * Replays the grouped calls: each group's count is spread over the keys (a call made once per
 * batch, like a server probe, is made once), each key's calls run one after another, and
 * `concurrency` keys run at once. Returns the wall seconds.
 */
export async function runCeiling(options: CeilingOptions): Promise<number> {
  const plans = options.keys.map(() => [] as CallGroup[]);
  for (const group of options.groups) {
    for (let i = 0; i < group.count; i++) plans[i % options.keys.length]!.push(group);
  }
  // Per key: the state reads and writes first, then set (admin), test (new token), the rest.
  const order: Record<string, number> = { vault: 0, admin: 1, new: 2, old: 3, wrong: 4, none: 5 };
  for (const plan of plans) plan.sort((a, b) => order[a.role]! - order[b.role]!);
  const started = process.hrtime.bigint();
  let next = 0;
  const worker = async () => {
    while (next < options.keys.length) {
      const index = next++;
      await rotateOne(options, options.keys[index]!, plans[index]!);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return Number(process.hrtime.bigint() - started) / 1e9;
}

async function rotateOne(options: CeilingOptions, key: string, plan: CallGroup[]): Promise<void> {
  const newToken = `bench_${randomBytes(30).toString('base64url')}`;
  let userQuery = 0;
  for (const call of plan) {
    if (call.server === 'vault') {
      await vaultCall(options.vault!, call.method, call.path.replace('{key}', key));
      continue;
    }
    const headers: Record<string, string> = { accept: 'application/scim+json' };
    const bearer = { new: newToken, old: options.scim.oldTokens.get(key)!, admin: options.scim.adminToken, wrong: `wrong_${randomBytes(30).toString('base64url')}`, none: undefined }[call.role as ScimRole];
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    let url = `${options.scim.origin}${call.path}`;
    let body: string | undefined;
    if (call.role === 'admin' && call.method === 'POST') {
      headers['content-type'] = 'application/json';
      body = JSON.stringify({ action: 'add', token: newToken });
    } else if (call.method === 'GET' && call.path.endsWith('/Users')) {
      // The identity providers' own tests (the path is all the log keeps): Entra's, then Okta's.
      url += userQuery++ % 2 === 0 ? `?filter=${encodeURIComponent(`externalId eq "${randomUUID()}"`)}` : '?startIndex=1&count=2';
    }
    await send(url, call.method, headers, body);
  }
}

/*
 * The ceiling's HTTP client is the leanest Node has, as provkey's own (node:http with a
 * keep-alive agent, src/stores/vault/transport.ts, src/targets/scim/shared-agents.ts): fetch
 * costs about 2.5 times the client CPU per request (4.5 against 1.7 ms per rotated key's 8
 * Vault calls, measured on this machine), which made the ceiling a floor.
 */
const keepAlive = new http.Agent({ keepAlive: true });

function send(url: string, method: string, headers: Record<string, string>, body?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method, agent: keepAlive, headers: body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, (response) => {
      response.resume();
      response.on('end', resolve);
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end(body);
  });
}

async function vaultCall(vault: { address: string; token: string }, method: string, path: string): Promise<void> {
  const headers: Record<string, string> = { 'x-vault-token': vault.token };
  let body: string | undefined;
  if (method === 'POST') {
    headers['content-type'] = 'application/json';
    // A state record of about the size provkey writes; metadata writes carry custom metadata.
    body = JSON.stringify(path.includes('/metadata/') ? { custom_metadata: { label: 'current', fingerprint: 'sha256:000000000000' } } : { data: { record: 'x'.repeat(700) } });
  }
  await send(`${vault.address}/v1/${path}${method === 'LIST' ? '?list=true' : ''}`, method === 'LIST' ? 'GET' : method, headers, body);
}
