import { randomBytes, randomUUID } from 'node:crypto';
import { directProbeEffect, type Probe, type ProbeEffect, type ProbeStep, type Verdict } from '../target.js';
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

/** userNames of the throw-away users: nothing else a SCIM app holds looks like this. */
export const SCIM_PROBE_PREFIX = 'provkey-probe-';
const PROBE_USER = /^provkey-probe-[0-9a-f]{16}@invalid$/;

/**
 * Create, patch and delete a throw-away user (drills, or `writeProbe: true`). The user is
 * inactive, has an unroutable name, and is deleted in `finally` whatever happened before; a
 * user left by an interrupted probe (a crash between create and delete) is found by its
 * name and deleted first. Each request is one side effect through the engine's seam (`effect`).
 */
export async function probeWriteUser(scim: ScimEndpoint, token: string, effect: ProbeEffect = directProbeEffect): Promise<Probe[]> {
  const probes: Probe[] = [];
  probes.push(await probeCleanup(scim, token, effect));
  let userId: string | undefined;
  try {
    const user = {
      schemas: [USER_SCHEMA],
      userName: `${SCIM_PROBE_PREFIX}${randomBytes(8).toString('hex')}@invalid`,
      externalId: randomUUID(),
      active: false,
      displayName: 'provkey write probe',
    };
    const created = await seamProbe(effect, 'add', 'write-create-user', () =>
      scim.request('POST', '/Users', { bearer: token, body: user }),
      judgeCreateUser,
    );
    probes.push(created.probe);
    userId = created.reply ? createdUserId(created.reply) : undefined;
    if (userId === undefined) {
      probes.push(skipped('write-patch-user', 'no user was created'), skipped('write-delete-user', 'no user was created'));
      return probes;
    }
    const id = userId;
    const patch = {
      schemas: [PATCH_OP_SCHEMA],
      Operations: [{ op: 'replace', path: 'displayName', value: 'provkey write probe (patched)' }],
    };
    const patched = await seamProbe(effect, 'modify', 'write-patch-user', () =>
      scim.request('PATCH', `/Users/${encodeURIComponent(id)}`, { bearer: token, body: patch }),
      (r) => judgeStatus(r, [200, 204]),
    );
    probes.push(patched.probe);
  } finally {
    if (userId !== undefined) {
      const id = userId;
      const deleted = await seamProbe(effect, 'delete', 'write-delete-user', () =>
        scim.request('DELETE', `/Users/${encodeURIComponent(id)}`, { bearer: token }),
        (r) => judgeStatus(r, [204, 200]),
      );
      probes.push(deleted.probe);
    }
  }
  return probes;
}

/**
 * Throw-away users of an interrupted probe, found with a `sw` filter and deleted. Only users
 * whose whole userName has the probe's shape are touched, even if the server ignored the filter.
 * A server that cannot filter so is reported, not failed (Entra and Okta need only `eq`).
 */
async function probeCleanup(scim: ScimEndpoint, token: string, effect: ProbeEffect): Promise<Probe> {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  const ran = await effect('cleanup', async (): Promise<Judgement> => {
    const found = await scim.request('GET', '/Users', { bearer: token, query: { filter: `userName sw "${SCIM_PROBE_PREFIX}"`, count: '100' } });
    const status = statusOf(found);
    if (found.kind === 'response' && (found.status === 400 || found.status === 501)) {
      return { outcome: 'unsupported', status, detail: `cannot look for leftover probe users (${describeReply(found)})` };
    }
    if (found.kind !== 'response' || found.status !== 200) return { outcome: 'fail', status, detail: describeReply(found) };
    const resources = isObject(found.body) && Array.isArray(found.body.Resources) ? found.body.Resources : [];
    const ids = resources.flatMap((r) => (isObject(r) && typeof r.id === 'string' && typeof r.userName === 'string' && PROBE_USER.test(r.userName) ? [r.id] : []));
    for (const id of ids) {
      const deleted = await scim.request('DELETE', `/Users/${encodeURIComponent(id)}`, { bearer: token });
      const judged = judgeStatus(deleted, [204, 200, 404]);
      if (judged.outcome === 'fail') return { ...judged, detail: `deleting a leftover probe user: ${judged.detail}` };
    }
    return { outcome: 'pass', status, detail: ids.length ? `removed ${ids.length} leftover probe user(s) from an interrupted run` : 'no leftover probe user' };
  });
  const judgement: Judgement = ran.ok ? ran.value : { outcome: 'fail', ...(ran.fault.status === undefined ? {} : { status: ran.fault.status }), detail: ran.fault.detail };
  return probeOf('write-cleanup', judgement, ms());
}

/** A timed probe as one seam step; a step the seam did not let through fails with its detail (an outage is never "rejected"). */
async function seamProbe(
  effect: ProbeEffect,
  step: ProbeStep,
  name: string,
  send: () => Promise<HttpReply>,
  judge: (reply: HttpReply) => Judgement,
): Promise<{ reply?: HttpReply; probe: Probe }> {
  const started = performance.now();
  const ran = await effect(step, () => timedProbe(name, send, judge));
  if (ran.ok) return ran.value;
  const { fault } = ran;
  return { probe: probeOf(name, { outcome: 'fail', ...(fault.status === undefined ? {} : { status: fault.status }), detail: fault.detail }, Math.round(performance.now() - started)) };
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
  return { reply, probe: probeOf(name, judge(reply), ms) };
}

function probeOf(name: string, judgement: Judgement, ms: number): Probe {
  // Field order as in Probe, so --json output reads naturally.
  return {
    name,
    outcome: judgement.outcome,
    ...(judgement.status === undefined ? {} : { status: judgement.status }),
    ms,
    ...(judgement.detail === undefined ? {} : { detail: judgement.detail }),
  };
}
