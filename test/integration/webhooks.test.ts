// notify webhooks end to end: the built CLI rotates, fails, revokes and drills keys on the
// real SCIM server and reports each outcome to a loopback receiver, which verifies every
// signature with an independent Standard Webhooks implementation (the `standardwebhooks`
// package). Every body received is scanned for every secret the test knows.

import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeRun, secretFingerprint } from '../harness/cli.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';
import { ADMIN_TOKEN, ObserveWorkspace } from './observe-workspace.ts';

const HOOK_SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const OTHER_SECRET = `whsec_${randomBytes(32).toString('base64')}`;

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** What the independent verifier made of it: the payload, or its error. */
  verified: { type: string; timestamp: string; data: Record<string, unknown> } | { error: string };
  status: number;
}

/**
 * /hook verifies with HOOK_SECRET and answers 503 to the first attempt of each message id,
 * so every delivery needs one retry; /broken always answers 500; /strict verifies with
 * OTHER_SECRET (a sender signing with the wrong key gets 401).
 */
class Receiver {
  readonly received: Received[] = [];
  private readonly seen = new Set<string>();
  private server!: Server;
  port = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const path = req.url ?? '';
        const secret = path === '/strict' ? OTHER_SECRET : HOOK_SECRET;
        let verified: Received['verified'];
        try {
          verified = new Webhook(secret).verify(body, req.headers as Record<string, string>) as Exclude<Received['verified'], { error: string }>;
        } catch (error) {
          verified = { error: (error as Error).message };
        }
        const id = String(req.headers['webhook-id']);
        let status = 'error' in verified ? 401 : 204;
        if (path === '/broken') status = 500;
        else if (path === '/hook' && status === 204 && !this.seen.has(id)) {
          this.seen.add(id);
          status = 503;
        }
        this.received.push({ path, headers: req.headers, body, verified, status });
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  /** Delivered (2xx) messages to /hook, by type. */
  delivered(type?: string): Received[] {
    return this.received.filter((r) => r.path === '/hook' && r.status === 204 && (!type || ('type' in r.verified && r.verified.type === type)));
  }

  take(): Received[] {
    return this.received.splice(0);
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

describe('notify webhooks', () => {
  let server: ScimServer;
  let receiver: Receiver;
  let w: ObserveWorkspace;
  const all: Received[] = [];
  const drain = () => {
    const got = receiver.take();
    all.push(...got);
    for (const r of got) w.cli.scanner.record(`webhook body to ${r.path}`, `${JSON.stringify(r.headers)}\n${r.body}`);
    return got;
  };
  const data = (r: Received) => ('data' in r.verified ? r.verified.data : {});

  beforeAll(async () => {
    server = await startScimServer({ adminToken: ADMIN_TOKEN, propagationMs: 0 });
    receiver = new Receiver();
    await receiver.start();
    w = new ObserveWorkspace(server, { HOOK_SECRET, OTHER_SECRET });
    w.cli.scanner.addSecret(HOOK_SECRET, 'webhook secret');
    w.cli.scanner.addSecret(HOOK_SECRET.slice('whsec_'.length), 'webhook secret (base64)');
    w.writeConfig(
      { app: { grace: '1h' }, hasty: { interval: '1ms', grace: '0' } },
      [
        'notify:',
        '  webhooks:',
        `    - { url: "${receiver.url('/hook')}", secretRef: "env:HOOK_SECRET", retries: 2, dueWithin: 40d }`,
        `    - { url: "${receiver.url('/broken')}", secretRef: "env:HOOK_SECRET", retries: 1, timeout: 5s, events: [rotation.succeeded] }`,
        `    - { url: "${receiver.url('/strict')}", secretRef: "env:HOOK_SECRET", retries: 3, events: [key.revoked] }`,
        '',
      ].join('\n'),
    );
    await w.ok(['add', 'app']);
    await w.ok(['add', 'hasty']);
    expect(drain(), 'add sends nothing').toEqual([]);
  });

  afterAll(async () => {
    try {
      await w?.scanAndRemove();
    } finally {
      await receiver?.stop();
      await server?.stop();
    }
  });

  it('rotation.succeeded is signed, retried once under the same id, and a dead receiver never fails the rotation', async () => {
    const old = await w.reveal('app', 'app v1');
    const rotated = await w.run(['rotate', 'app']);
    expect(rotated.code, describeRun(rotated)).toBe(0);
    const next = await w.reveal('app', 'app v2');
    const got = drain();
    const hook = got.filter((r) => r.path === '/hook' && 'type' in r.verified && r.verified.type === 'rotation.succeeded');
    expect(hook.map((r) => r.status), 'first attempt 503, the retry delivered').toEqual([503, 204]);
    expect(hook[0]!.headers['webhook-id']).toBe(hook[1]!.headers['webhook-id']);
    expect(String(hook[0]!.headers['webhook-id'])).toMatch(/^msg_[0-9a-f-]{36}$/);
    expect(Math.abs(Number(hook[1]!.headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(60);
    expect(data(hook[1]!)).toMatchObject({ schemaVersion: 1, key: 'app', operation: 'rotate', outcome: 'rotated', ok: true, fingerprint: secretFingerprint(next), previousFingerprint: secretFingerprint(old) });
    // /broken: 1 + 1 retry, then a warning on stderr naming only the origin; the exit code stays 0.
    expect(got.filter((r) => r.path === '/broken').map((r) => r.status)).toEqual([500, 500]);
    expect(rotated.stderr).toContain(`webhook rotation.succeeded to http://127.0.0.1:${receiver.port} not delivered after 2 attempt(s): HTTP 500`);
    expect(rotated.stderr).not.toContain('/broken');
    // The rotate run also reports what is coming due: hasty is overdue (1ms interval), app due within 40d.
    expect(got.filter((r) => r.status === 204).map((r) => ('type' in r.verified ? `${r.verified.type}:${String(data(r).key)}` : 'unverified')).sort()).toEqual([
      'key.due_soon:app',
      'key.expiring:hasty',
      'rotation.succeeded:app',
    ]);
    for (const r of got.filter((x) => x.path !== '/strict')) expect(r.verified, `signature of a message to ${r.path}`).not.toHaveProperty('error');
  });

  it('a failed rotation is reported as failed or rolled back; revoke and drill report theirs', async () => {
    const failed = await w.run(['rotate', 'app'], { env: { SCIM_ADMIN_TOKEN: 'wrong-admin-token-000000' } });
    expect(failed.code, describeRun(failed)).not.toBe(0);
    const failure = drain().filter((r) => r.status === 204 && 'type' in r.verified && r.verified.type.startsWith('rotation.'));
    expect(failure).toHaveLength(1);
    expect(['rotation.failed', 'rotation.rolled_back']).toContain((failure[0]!.verified as { type: string }).type);
    expect(data(failure[0]!)).toMatchObject({ key: 'app', ok: false, exitCode: failed.code });

    const previous = (await w.json<{ versions: { label: string; fingerprint: string }[] }>(['history', 'app'])).data.versions.find((v) => v.label === 'previous')!;
    await w.ok(['revoke', 'app', '--previous', '--yes']);
    const revoked = drain();
    expect(revoked.filter((r) => r.path === '/hook' && r.status === 204).map((r) => [(r.verified as { type: string }).type, data(r).fingerprint])).toEqual([['key.revoked', previous.fingerprint]]);
    // /strict checks with another secret: the signature provkey made with HOOK_SECRET is refused, no retry on 401.
    const strict = revoked.filter((r) => r.path === '/strict');
    expect(strict).toHaveLength(1);
    expect(strict[0]!.verified).toHaveProperty('error');
    expect(strict[0]!.status).toBe(401);

    const leaked = await w.reveal('app', 'app before the drill');
    const drill = await w.run(['drill', 'compromise', 'app', '--yes']);
    expect(drill.code, describeRun(drill)).toBe(0);
    const finished = drain().filter((r) => r.status === 204);
    expect(finished.map((r) => (r.verified as { type: string }).type)).toEqual(['drill.finished']);
    expect(data(finished[0]!)).toMatchObject({ key: 'app', ok: true, leakedFingerprint: secretFingerprint(leaked), withinRto: true, containmentProven: true });
    await w.reveal('app', 'app after the drill');
  });

  it('status reports keys due soon and overdue; every body verified and free of secrets', async () => {
    await w.run(['status']);
    const got = drain().filter((r) => r.status === 204);
    expect(got.map((r) => `${(r.verified as { type: string }).type}:${String(data(r).key)}`).sort()).toEqual(['key.due_soon:app', 'key.expiring:hasty']);
    const overdue = data(got.find((r) => data(r).key === 'hasty')!);
    expect(overdue.overdueMs).toBeGreaterThan(0);
    expect(overdue.fingerprint).toMatch(/^sha256:[0-9a-f]{12}$/);
    expect(all.length).toBeGreaterThan(10);
    for (const r of all) expect(r.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
  });

  it('a webhook that would send in clear text over the network, or a bad secret, is a config error before anything changes', async () => {
    const before = w.cli.scanner.outputs.length;
    const bad = async (hook: string, env: Record<string, string> = {}) => {
      w.writeConfig({ app: { grace: '1h' }, hasty: { interval: '1ms', grace: '0' } }, `notify:\n  webhooks:\n    - ${hook}\n`);
      return w.run(['rotate', 'app'], { env });
    };
    const clear = await bad('{ url: "http://192.0.2.1/hook", secretRef: "env:HOOK_SECRET" }');
    expect(clear.code, describeRun(clear)).toBe(2);
    expect(clear.stderr).toMatch(/^provkey: notify\.webhooks\.0\.url: http:\/\/ is refused/);
    const weak = await bad('{ url: "http://127.0.0.1:9/hook", secretRef: "env:WEAK" }', { WEAK: 'not-a-whsec-secret' });
    expect(weak.code, describeRun(weak)).toBe(2);
    expect(weak.stderr).toMatch(/^provkey: notify\.webhooks\.0\.secretRef: must resolve to a Standard Webhooks secret/);
    const unknown = await bad('{ url: "http://127.0.0.1:9/hook", secretRef: "env:HOOK_SECRET", events: [key.exploded] }');
    expect(unknown.code, describeRun(unknown)).toBe(2);
    expect(unknown.stderr).toContain('notify.webhooks.0.events.0');
    expect(drain(), 'nothing was sent').toEqual([]);
    expect(w.cli.scanner.outputs.length).toBeGreaterThan(before);
  });
});
