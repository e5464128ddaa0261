// How the SCIM target reads server answers. The bodies below were recorded from the SCIMMY
// test server (test/harness/scim/server.ts) so a regression can replay them without it.

import { describe, expect, it } from 'vitest';
import type { HttpReply } from '../../src/targets/scim/http-client.js';
import {
  judgeCreateUser,
  judgeEntraUserQuery,
  judgeOktaUserPage,
  judgeServiceProviderConfig,
  judgeWrongTokenRejected,
} from '../../src/targets/scim/probes.js';
import { oneLine, scrubSecrets } from '../../src/targets/scim/redact.js';
import { describeReply, listResponseProblem, scimErrorDetail, tokenVerdict } from '../../src/targets/scim/scim-answers.js';

const RECORDED = {
  /** GET /Users?filter=externalId eq "<random GUID>" → 200 */
  emptyList: { schemas: ['urn:ietf:params:scim:api:messages:2.0:ListResponse'], Resources: [], startIndex: 1, itemsPerPage: 0, totalResults: 0 },
  /** Any SCIM request with an unknown token → 401 (WWW-Authenticate: Bearer realm="scim", error="invalid_token") */
  invalidToken: { schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '401', detail: 'Invalid, expired or revoked bearer token' },
  /** GET /ServiceProviderConfig on a server started with --no-spc → 404 */
  noServiceProviderConfig: { schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '404', detail: 'ServiceProviderConfig is not available on this server' },
  /** GET /ServiceProviderConfig → 200 (abridged) */
  serviceProviderConfig: { schemas: ['urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig'], patch: { supported: true }, filter: { supported: true, maxResults: 200 } },
  /** POST /Users → 201 (abridged) */
  createdUser: { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], id: '7ad9a199-68c7-414d-b33b-662b368a898a', userName: 'provkey-probe-1@invalid', active: false },
  /** POST /Users with a taken userName → 409 */
  uniqueness: { schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '409', scimType: 'uniqueness', detail: "userName 'provkey-probe-1@invalid' is already in use" },
  /** GET /Users?filter=externalId eq → 400 */
  badFilter: {
    schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'],
    status: '400',
    scimType: 'invalidValue',
    detail: "Missing expected comparison value for 'eq' comparator in property 'externalId' of Filter expression object #1",
  },
  /** A path outside /scim/v2 → 404, not a SCIM error */
  notFoundOutsideScim: { error: 'not found' },
};

function reply(status: number, body?: unknown): HttpReply {
  return { kind: 'response', status, body, text: body === undefined ? '' : JSON.stringify(body) };
}
const refused: HttpReply = { kind: 'unreachable', code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:9' };
const tlsFailure: HttpReply = { kind: 'unreachable', code: 'DEPTH_ZERO_SELF_SIGNED_CERT', message: 'TLS: self-signed certificate', tls: true };
const oversized: HttpReply = { kind: 'failed', code: 'EBODYTOOLARGE', message: 'answer larger than 1048576 bytes' };

describe('tokenVerdict', () => {
  it.each([
    [reply(200, RECORDED.emptyList), 'accepted'],
    [reply(401, RECORDED.invalidToken), 'rejected'],
    [reply(403), 'rejected'],
    [reply(404, RECORDED.notFoundOutsideScim), 'error'],
    // An app that cannot answer now says nothing about the token: never "rejected".
    [reply(500), 'unreachable'],
    [reply(502), 'unreachable'],
    [reply(503), 'unreachable'],
    [reply(429), 'unreachable'],
    [reply(400), 'error'],
    [reply(302), 'error'],
    [refused, 'unreachable'],
    [tlsFailure, 'unreachable'],
    [oversized, 'error'],
  ] as const)('%j → %s', (r, verdict) => {
    expect(tokenVerdict(r)).toBe(verdict);
  });
});

describe('listResponseProblem', () => {
  it('accepts the recorded empty ListResponse for both probes', () => {
    expect(listResponseProblem(RECORDED.emptyList, { empty: true })).toBeUndefined();
    expect(listResponseProblem(RECORDED.emptyList, { empty: false })).toBeUndefined();
  });

  it('accepts a ListResponse without Resources (RFC 7644 allows omitting it when empty)', () => {
    expect(listResponseProblem({ schemas: RECORDED.emptyList.schemas, totalResults: 0 }, { empty: true })).toBeUndefined();
  });

  it.each([
    [undefined, 'answer is not a JSON object'],
    [[], 'answer is not a JSON object'],
    [{ totalResults: 0, Resources: [] }, 'schemas does not contain urn:ietf:params:scim:api:messages:2.0:ListResponse'],
    [{ schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], totalResults: 0 }, 'schemas does not contain'],
    [{ schemas: RECORDED.emptyList.schemas, Resources: [] }, 'totalResults is missing'],
    [{ schemas: RECORDED.emptyList.schemas, totalResults: '0' }, 'totalResults is missing'],
    [{ schemas: RECORDED.emptyList.schemas, totalResults: 0, Resources: {} }, 'Resources is not an array'],
  ])('refuses %j', (body, problem) => {
    expect(listResponseProblem(body, { empty: false })).toContain(problem);
  });

  it('Entra needs the random externalId to match nothing', () => {
    const oneUser = { ...RECORDED.emptyList, totalResults: 1, Resources: [RECORDED.createdUser] };
    expect(listResponseProblem(oneUser, { empty: true })).toBe('a filter on a random externalId matched 1 resource(s); expected none');
    expect(listResponseProblem(oneUser, { empty: false })).toBeUndefined();
  });

  it('Okta paging: totalResults > 0 with no Resources is broken', () => {
    expect(listResponseProblem({ ...RECORDED.emptyList, totalResults: 3 }, { empty: false })).toBe('totalResults is 3 but Resources is empty');
  });
});

describe('judging probe answers', () => {
  it('entra-user-query, expect accept', () => {
    expect(judgeEntraUserQuery(reply(200, RECORDED.emptyList), 'accept')).toEqual({ outcome: 'pass', status: 200 });
    expect(judgeEntraUserQuery(reply(200, RECORDED.createdUser), 'accept')).toMatchObject({ outcome: 'fail', detail: expect.stringContaining('not an empty ListResponse') });
    expect(judgeEntraUserQuery(reply(401, RECORDED.invalidToken), 'accept')).toEqual({
      outcome: 'fail',
      status: 401,
      detail: 'HTTP 401: Invalid, expired or revoked bearer token',
    });
    expect(judgeEntraUserQuery(reply(400, RECORDED.badFilter), 'accept').detail).toMatch(/^HTTP 400: Missing expected comparison value .* \(scimType invalidValue\)$/);
    expect(judgeEntraUserQuery(refused, 'accept')).toEqual({ outcome: 'fail', status: 'ECONNREFUSED', detail: 'unreachable: connect ECONNREFUSED 127.0.0.1:9' });
  });

  it('entra-user-query, expect reject', () => {
    expect(judgeEntraUserQuery(reply(401, RECORDED.invalidToken), 'reject')).toEqual({ outcome: 'pass', status: 401 });
    expect(judgeEntraUserQuery(reply(403), 'reject')).toEqual({ outcome: 'pass', status: 403 });
    expect(judgeEntraUserQuery(reply(200, RECORDED.emptyList), 'reject')).toEqual({ outcome: 'fail', status: 200, detail: 'the server still accepts this token (HTTP 200)' });
    expect(judgeEntraUserQuery(reply(503, { detail: 'maintenance' }), 'reject')).toEqual({ outcome: 'fail', status: 503, detail: 'HTTP 503: maintenance' });
  });

  it('okta-user-page', () => {
    expect(judgeOktaUserPage(reply(200, RECORDED.emptyList))).toEqual({ outcome: 'pass', status: 200 });
    expect(judgeOktaUserPage(reply(200, { users: [] })).outcome).toBe('fail');
    expect(judgeOktaUserPage(reply(500, { detail: 'db down' }))).toEqual({ outcome: 'fail', status: 500, detail: 'HTTP 500: db down' });
  });

  it('service-provider-config: 404 and 501 are "unsupported", not failed', () => {
    expect(judgeServiceProviderConfig(reply(200, RECORDED.serviceProviderConfig))).toEqual({ outcome: 'pass', status: 200 });
    expect(judgeServiceProviderConfig(reply(404, RECORDED.noServiceProviderConfig))).toMatchObject({
      outcome: 'unsupported',
      status: 404,
      detail: expect.stringContaining('ServiceProviderConfig is not available on this server'),
    });
    expect(judgeServiceProviderConfig(reply(501)).outcome).toBe('unsupported');
    expect(judgeServiceProviderConfig(reply(200, {}))).toMatchObject({ outcome: 'pass', detail: expect.stringContaining('without the') });
    expect(judgeServiceProviderConfig(reply(401, RECORDED.invalidToken)).outcome).toBe('fail');
    expect(judgeServiceProviderConfig(reply(500)).outcome).toBe('fail');
  });

  it('wrong-token-rejected: a server that accepts any token fails loudly', () => {
    expect(judgeWrongTokenRejected(reply(401, RECORDED.invalidToken))).toEqual({ outcome: 'pass', status: 401 });
    expect(judgeWrongTokenRejected(reply(403))).toEqual({ outcome: 'pass', status: 403 });
    const accepted = judgeWrongTokenRejected(reply(200, RECORDED.emptyList));
    expect(accepted.outcome).toBe('fail');
    expect(accepted.detail).toMatch(/^INSECURE: the server accepted a random wrong token \(HTTP 200\)/);
    expect(judgeWrongTokenRejected(reply(500)).outcome).toBe('fail');
    expect(judgeWrongTokenRejected(refused).outcome).toBe('fail');
  });

  it('write-create-user', () => {
    expect(judgeCreateUser(reply(201, RECORDED.createdUser))).toEqual({ outcome: 'pass', status: 201 });
    expect(judgeCreateUser(reply(200, RECORDED.createdUser))).toMatchObject({ outcome: 'pass', detail: 'RFC 7644 §3.3 says 201 Created' });
    expect(judgeCreateUser(reply(201, {}))).toMatchObject({ outcome: 'fail', detail: 'created, but the answer has no "id"' });
    expect(judgeCreateUser(reply(409, RECORDED.uniqueness))).toEqual({
      outcome: 'fail',
      status: 409,
      detail: "HTTP 409: userName 'provkey-probe-1@invalid' is already in use (scimType uniqueness)",
    });
  });
});

describe('error details', () => {
  it('reads SCIM detail, then common non-SCIM shapes, then text', () => {
    expect(scimErrorDetail(RECORDED.invalidToken, '')).toBe('Invalid, expired or revoked bearer token');
    expect(scimErrorDetail(RECORDED.notFoundOutsideScim, '')).toBe('not found');
    expect(scimErrorDetail({ error: 'invalid_token', error_description: 'token expired' }, '')).toBe('token expired');
    expect(scimErrorDetail({ message: 'Unauthorized' }, '')).toBe('Unauthorized');
    expect(scimErrorDetail(undefined, '<html><body>502 Bad Gateway</body></html>')).toBe('<html><body>502 Bad Gateway</body></html>');
    expect(scimErrorDetail(undefined, '')).toBeUndefined();
    expect(scimErrorDetail({}, '{}')).toBeUndefined();
  });

  it('truncates to one line of at most 200 characters', () => {
    const detail = scimErrorDetail({ detail: `line one\nline two ${'x'.repeat(400)}` }, '')!;
    expect(detail.length).toBe(200);
    expect(detail).toMatch(/^line one line two x+…$/);
  });

  it('describeReply names status, or the network failure', () => {
    expect(describeReply(reply(500, { detail: 'boom' }))).toBe('HTTP 500: boom');
    expect(describeReply(reply(502))).toBe('HTTP 502');
    expect(describeReply(tlsFailure)).toBe("unreachable: TLS: self-signed certificate (DEPTH_ZERO_SELF_SIGNED_CERT; set tls.caFile to the CA that issued the app's certificate)");
    expect(describeReply(oversized)).toBe('EBODYTOOLARGE: answer larger than 1048576 bytes');
  });
});

describe('redaction', () => {
  const secret = { value: 'pk_s3cr3t-value', fingerprint: 'sha256:0123456789ab' };

  it('replaces every occurrence of a secret with its fingerprint', () => {
    expect(scrubSecrets('got pk_s3cr3t-value, expected pk_s3cr3t-value!', [secret])).toBe('got sha256:0123456789ab, expected sha256:0123456789ab!');
    expect(scrubSecrets('nothing here', [secret, undefined])).toBe('nothing here');
    expect(scrubSecrets('abc', [{ value: '', fingerprint: 'x' }])).toBe('abc');
  });

  it('oneLine flattens control characters and whitespace', () => {
    expect(oneLine('a\r\n\tb\u0007  c')).toBe('a b c');
    expect(oneLine('x'.repeat(10), 5)).toBe('xxxx…');
  });
});

describe('Retry-After', () => {
  it('parses delta-seconds and HTTP dates; ignores garbage', async () => {
    const { parseRetryAfter } = await import('../../src/targets/scim/retry-after.js');
    const now = Date.parse('2026-12-01T08:00:00Z');
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter('Tue, 01 Dec 2026 08:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Tue, 01 Dec 2026 07:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });

  it('a 429 whose Retry-After is past the bound is final at once and says so', async () => {
    const { RetryAfterBudget, sendHonouringRetryAfter } = await import('../../src/targets/scim/retry-after.js');
    let sent = 0;
    const http = {
      send: async (): Promise<HttpReply> => {
        sent += 1;
        return { kind: 'response', status: 429, body: undefined, text: '', retryAfterMs: 3_600_000 };
      },
      close: () => undefined,
    };
    const result = await sendHonouringRetryAfter(http, { method: 'GET', url: new URL('http://127.0.0.1/'), timeoutMs: 1000 }, new RetryAfterBudget());
    expect(sent).toBe(1);
    expect(result).toMatchObject({ kind: 'response', status: 429, gaveUpWaitingMs: 3_600_000 });
    expect(tokenVerdict(result)).toBe('unreachable');
    expect(describeReply(result)).toBe("HTTP 429 (Retry-After 3600s is past provkey's bound; try later)");
  });
});
