// The Graph synchronization double is as strict as Graph where provkey depends on it
// (docs/entra.md, testing). Driven over HTTPS with its own CA (verification on), against the real
// SCIM app: its validateCredentials must really call the app with the supplied token.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGraphSynchronizationDouble, type GraphSynchronizationDouble } from '../harness/graph-synchronization-double.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';

let graph: GraphSynchronizationDouble;
let scim: ScimServer;
let ca: string;
const appToken = `app-${randomBytes(18).toString('base64url')}`;

function request(method: string, url: string, body?: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, ca, headers: { ...(body ? { 'content-type': body.startsWith('{') ? 'application/json' : 'application/x-www-form-urlencoded' } : {}), ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function tokenFor(clientId: string, secret: string): Promise<string> {
  const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: secret, scope: `${new URL(graph.graphUrl).origin}/.default` });
  const answer = await request('POST', `${graph.authorityHost}/${graph.tenantId}/oauth2/v2.0/token`, form.toString());
  return (JSON.parse(answer.body) as { access_token: string }).access_token;
}

beforeAll(async () => {
  scim = await startScimServer({ tokens: [appToken] });
  graph = await startGraphSynchronizationDouble();
  ca = readFileSync(graph.caFile, 'utf8');
  graph.addClient('writer', 'writer-secret', ['Synchronization.ReadWrite.All']);
  graph.addClient('owner-not', 'owned-secret', ['Application.ReadWrite.OwnedBy']);
  graph.addClient('reader', 'reader-secret', ['Application.Read.All']);
});
afterAll(async () => {
  await graph?.stop();
  await scim?.stop();
});

describe('Graph synchronization double', () => {
  const job = () => `${graph.graphUrl}/servicePrincipals/${graph.servicePrincipalId}/synchronization/jobs/${graph.jobId}`;
  const secrets = () => `${graph.graphUrl}/servicePrincipals/${graph.servicePrincipalId}/synchronization/secrets`;
  const pair = (token: string, base = scim.url) => [{ key: 'BaseAddress', value: base }, { key: 'SecretToken', value: token }];

  it('refuses a missing or foreign token (401) and a token without the permission (403), in Graph\'s error shape', async () => {
    expect((await request('GET', job())).status).toBe(401);
    expect((await request('GET', job(), undefined, { authorization: 'Bearer not.a.token' })).status).toBe(401);
    const reader = await tokenFor('reader', 'reader-secret');
    const denied = await request('GET', job(), undefined, { authorization: `Bearer ${reader}` });
    expect(denied.status).toBe(403);
    expect(JSON.parse(denied.body).error.code).toBe('Authorization_RequestDenied');
    // Application.ReadWrite.OwnedBy counts only for an owner of the service principal.
    const notOwner = await tokenFor('owner-not', 'owned-secret');
    expect((await request('GET', job(), undefined, { authorization: `Bearer ${notOwner}` })).status).toBe(403);
    const wrongSecret = await request('POST', `${graph.authorityHost}/${graph.tenantId}/oauth2/v2.0/token`, new URLSearchParams({ grant_type: 'client_credentials', client_id: 'writer', client_secret: 'nope', scope: 'x/.default' }).toString());
    expect(wrongSecret.status).toBe(401);
    expect(wrongSecret.body).toContain('AADSTS7000215');
  });

  it('validateCredentials calls the SCIM app with the supplied token: 204 when the app accepts it, 400 otherwise', async () => {
    const auth = { authorization: `Bearer ${await tokenFor('writer', 'writer-secret')}` };
    const good = await request('POST', `${job()}/validateCredentials`, JSON.stringify({ useSavedCredentials: false, credentials: pair(appToken) }), auth);
    expect(good.status).toBe(204);
    const bad = await request('POST', `${job()}/validateCredentials`, JSON.stringify({ useSavedCredentials: false, credentials: pair('not-accepted-by-the-app') }), auth);
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body).error.code).toContain('CredentialValidationUnauthorized');
    expect(bad.body).not.toContain('not-accepted-by-the-app');
    // The app really saw the query: a stopped app makes the same call fail as unreachable.
    const gone = await request('POST', `${job()}/validateCredentials`, JSON.stringify({ credentials: pair(appToken, 'http://127.0.0.1:9/scim/v2') }), auth);
    expect(JSON.parse(gone.body).error.code).toContain('Unavailable');
  });

  it('saves secrets, masks the token on read, validates saved credentials; quarantine and restart', async () => {
    const auth = { authorization: `Bearer ${await tokenFor('writer', 'writer-secret')}` };
    expect((await request('PUT', secrets(), JSON.stringify({ value: pair(appToken) }), auth)).status).toBe(204);
    const read = JSON.parse((await request('GET', secrets(), undefined, auth)).body) as { value: { key: string; value: string }[] };
    expect(read.value.find((p) => p.key === 'SecretToken')!.value).toBe('*****');
    expect(read.value.find((p) => p.key === 'BaseAddress')!.value).toBe(scim.url);
    expect((await request('POST', `${job()}/validateCredentials`, JSON.stringify({ useSavedCredentials: true }), auth)).status).toBe(204);
    graph.quarantine('EncounteredQuarantineException');
    expect(JSON.parse((await request('GET', job(), undefined, auth)).body).status).toMatchObject({ code: 'Quarantine', quarantine: { reason: 'EncounteredQuarantineException' } });
    expect((await request('POST', `${job()}/restart`, JSON.stringify({ criteria: { resetScope: 'QuarantineState' } }), auth)).status).toBe(204);
    expect(JSON.parse((await request('GET', job(), undefined, auth)).body).status.code).toBe('Active');
    expect((await request('PUT', secrets(), JSON.stringify({ value: 'not a list' }), auth)).status).toBe(400);
  });

  it('throttles with Retry-After in Graph\'s error shape', async () => {
    const auth = { authorization: `Bearer ${await tokenFor('writer', 'writer-secret')}` };
    graph.throttleNext(1, 3);
    const throttled = await request('GET', job(), undefined, auth);
    expect(throttled.status).toBe(429);
    expect(JSON.parse(throttled.body).error.code).toBe('TooManyRequests');
    expect((await request('GET', job(), undefined, auth)).status).toBe(200);
  });
});
