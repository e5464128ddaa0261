import { randomBytes, randomUUID } from 'node:crypto';
import type { Probe, Verdict } from '../target.js';
import type { HttpReply } from './http-client.js';
import {
  describeReply,
  isObject,
  isRejection,
  listResponseProblem,
  PATCH_OP_SCHEMA,
  SERVICE_PROVIDER_CONFIG_SCHEMA,
  tokenVerdict,
  USER_SCHEMA,
} from './scim-answers.js';
import type { ScimEndpoint } from './scim-endpoint.js';

/**
 * The requests identity providers themselves send when an admin clicks "Test connection",
 * so passing provkey's test means passing theirs. Each probe is a pure judgement of one
 * reply (`judge…`, unit-tested with recorded answers) around one timed request.
 */

export type Judgement = Pick<Probe, 'outcome' | 'status' | 'detail'>;

/** Entra ID's Test Connection: a filter on a random externalId must find nothing. */
export async function probeEntraUserQuery(
  scim: ScimEndpoint,
  token: string,
  expect: 'accept' | 'reject',
): Promise<{ probe: Probe; verdict: Verdict }> {
  const filter = `externalId eq "${randomUUID()}"`;
  const { reply, probe } = await timedProbe('entra-user-query', () =>
    scim.request('GET', '/Users', { bearer: token, query: { filter } }),
    (r) => judgeEntraUserQuery(r, expect),
  );
  return { probe, verdict: tokenVerdict(reply) };
}

export function judgeEntraUserQuery(reply: HttpReply, expect: 'accept' | 'reject'): Judgement {
  const status = statusOf(reply);
  if (expect === 'reject') {
    if (isRejection(reply)) return { outcome: 'pass', status };
    if (tokenVerdict(reply) === 'accepted') {
      return { outcome: 'fail', status, detail: `the server still accepts this token (HTTP ${status})` };
    }
    return { outcome: 'fail', status, detail: describeReply(reply) };
  }
  if (reply.kind !== 'response' || reply.status !== 200) return { outcome: 'fail', status, detail: describeReply(reply) };
  const problem = listResponseProblem(reply.body, { empty: true });
  return problem ? { outcome: 'fail', status, detail: `not an empty ListResponse: ${problem}` } : { outcome: 'pass', status };
}

/** Okta's connection test: the first page of users. */
export async function probeOktaUserPage(scim: ScimEndpoint, token: string): Promise<Probe> {
  const { probe } = await timedProbe('okta-user-page', () =>
    scim.request('GET', '/Users', { bearer: token, query: { startIndex: '1', count: '2' } }),
    judgeOktaUserPage,
  );
  return probe;
}

export function judgeOktaUserPage(reply: HttpReply): Judgement {
  const status = statusOf(reply);
  if (reply.kind !== 'response' || reply.status !== 200) return { outcome: 'fail', status, detail: describeReply(reply) };
  const problem = listResponseProblem(reply.body, { empty: false });
  return problem ? { outcome: 'fail', status, detail: `not a ListResponse: ${problem}` } : { outcome: 'pass', status };
}

/** RFC 7644 §4 makes it mandatory, but neither Entra nor Okta needs it: missing is reported, not failed. */
export async function probeServiceProviderConfig(scim: ScimEndpoint, token: string): Promise<Probe> {
  const { probe } = await timedProbe('service-provider-config', () =>
    scim.request('GET', '/ServiceProviderConfig', { bearer: token }),
    judgeServiceProviderConfig,
  );
  return probe;
}

export function judgeServiceProviderConfig(reply: HttpReply): Judgement {
  const status = statusOf(reply);
  if (reply.kind === 'response' && (reply.status === 404 || reply.status === 501)) {
    return { outcome: 'unsupported', status, detail: `not implemented (${describeReply(reply)}); RFC 7644 requires it, Entra and Okta do not` };
  }
  if (reply.kind !== 'response' || reply.status !== 200) return { outcome: 'fail', status, detail: describeReply(reply) };
  const schemas = isObject(reply.body) ? reply.body.schemas : undefined;
  if (!Array.isArray(schemas) || !schemas.includes(SERVICE_PROVIDER_CONFIG_SCHEMA)) {
    return { outcome: 'pass', status, detail: `answered 200 without the ${SERVICE_PROVIDER_CONFIG_SCHEMA} schema` };
  }
  return { outcome: 'pass', status };
}

/**
 * The Entra query with a random token. A server that answers 200 checks no token at all:
 * every rotation and revoke would be theatre, so this fails the test loudly.
 */
export async function probeWrongTokenRejected(scim: ScimEndpoint): Promise<Probe> {
  const wrongToken = `provkey-wrong-${randomBytes(24).toString('base64url')}`;
  const filter = `externalId eq "${randomUUID()}"`;
  const { probe } = await timedProbe('wrong-token-rejected', () =>
    scim.request('GET', '/Users', { bearer: wrongToken, query: { filter } }),
    judgeWrongTokenRejected,
  );
  return probe;
}

export function judgeWrongTokenRejected(reply: HttpReply): Judgement {
  const status = statusOf(reply);
  if (isRejection(reply)) return { outcome: 'pass', status };
  if (tokenVerdict(reply) === 'accepted') {
    return {
      outcome: 'fail',
      status,
      detail: `INSECURE: the server accepted a random wrong token (HTTP ${status}); it does not check bearer tokens, so revoking a key changes nothing`,
    };
  }
  return { outcome: 'fail', status, detail: `expected 401 or 403 for a wrong token: ${describeReply(reply)}` };
}

/**
 * Create, patch and delete a throw-away user (drills, or `writeProbe: true`). The user is
 * inactive, has an unroutable name, and is deleted in `finally` whatever happened before.
 */
export async function probeWriteUser(scim: ScimEndpoint, token: string): Promise<Probe[]> {
  const probes: Probe[] = [];
  let userId: string | undefined;
  try {
    const user = {
      schemas: [USER_SCHEMA],
      userName: `provkey-probe-${randomBytes(8).toString('hex')}@invalid`,
      externalId: randomUUID(),
      active: false,
      displayName: 'provkey write probe',
    };
    const created = await timedProbe('write-create-user', () =>
      scim.request('POST', '/Users', { bearer: token, body: user }),
      judgeCreateUser,
    );
    probes.push(created.probe);
    userId = createdUserId(created.reply);
    if (userId === undefined) {
      probes.push(skipped('write-patch-user', 'no user was created'), skipped('write-delete-user', 'no user was created'));
      return probes;
    }
    const id = userId;
    const patch = {
      schemas: [PATCH_OP_SCHEMA],
      Operations: [{ op: 'replace', path: 'displayName', value: 'provkey write probe (patched)' }],
    };
    const patched = await timedProbe('write-patch-user', () =>
      scim.request('PATCH', `/Users/${encodeURIComponent(id)}`, { bearer: token, body: patch }),
      (r) => judgeStatus(r, [200, 204]),
    );
    probes.push(patched.probe);
  } finally {
    if (userId !== undefined) {
      const id = userId;
      const deleted = await timedProbe('write-delete-user', () =>
        scim.request('DELETE', `/Users/${encodeURIComponent(id)}`, { bearer: token }),
        (r) => judgeStatus(r, [204, 200]),
      );
      probes.push(deleted.probe);
    }
  }
  return probes;
}

export function judgeCreateUser(reply: HttpReply): Judgement {
  const status = statusOf(reply);
  if (createdUserId(reply) !== undefined) {
    return reply.kind === 'response' && reply.status === 201 ? { outcome: 'pass', status } : { outcome: 'pass', status, detail: 'RFC 7644 §3.3 says 201 Created' };
  }
  if (reply.kind === 'response' && reply.status >= 200 && reply.status < 300) {
    return { outcome: 'fail', status, detail: 'created, but the answer has no "id"' };
  }
  return { outcome: 'fail', status, detail: describeReply(reply) };
}

function createdUserId(reply: HttpReply): string | undefined {
  if (reply.kind !== 'response' || (reply.status !== 201 && reply.status !== 200)) return undefined;
  const id = isObject(reply.body) ? reply.body.id : undefined;
  return typeof id === 'string' && id !== '' ? id : undefined;
}

function judgeStatus(reply: HttpReply, expected: number[]): Judgement {
  const status = statusOf(reply);
  return reply.kind === 'response' && expected.includes(reply.status)
    ? { outcome: 'pass', status }
    : { outcome: 'fail', status, detail: describeReply(reply) };
}

export function skipped(name: string, detail: string): Probe {
  return { name, outcome: 'skipped', ms: 0, detail };
}

function statusOf(reply: HttpReply): number | string {
  return reply.kind === 'response' ? reply.status : reply.code;
}

async function timedProbe(
  name: string,
  send: () => Promise<HttpReply>,
  judge: (reply: HttpReply) => Judgement,
): Promise<{ reply: HttpReply; probe: Probe }> {
  const started = performance.now();
  const reply = await send();
  const ms = Math.round(performance.now() - started);
  const judgement = judge(reply);
  // Field order as in Probe, so --json output reads naturally.
  const probe: Probe = {
    name,
    outcome: judgement.outcome,
    ...(judgement.status === undefined ? {} : { status: judgement.status }),
    ms,
    ...(judgement.detail === undefined ? {} : { detail: judgement.detail }),
  };
  return { reply, probe };
}
