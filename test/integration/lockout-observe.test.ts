// A real lockout (the SCIM server ends up refusing both versions: the exec applier empties its
// token list) seen by every observer: the key.lockout webhook (verified by the standardwebhooks
// package), the lockout gauge and last rotation outcome in the metrics file, status exit 3.

import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import parsePrometheus from 'parse-prometheus-text-format';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeRun } from '../harness/cli.ts';
import { checkExposition } from '../harness/promcheck.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';
import { ObserveWorkspace } from './observe-workspace.ts';

const HOOK_SECRET = `whsec_${randomBytes(32).toString('base64')}`;

describe('a lockout, observed', () => {
  let server: ScimServer;
  let receiver: Server;
  let w: ObserveWorkspace;
  const bodies: { type: string; data: Record<string, unknown> }[] = [];

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (c: string) => (body += c));
      req.on('end', () => {
        w.cli.scanner.record('webhook body', body);
        try {
          bodies.push(new Webhook(HOOK_SECRET).verify(body, req.headers as Record<string, string>) as (typeof bodies)[number]);
          res.writeHead(204).end();
        } catch {
          res.writeHead(401).end();
        }
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    server = await startScimServer({ propagationMs: 0 });
    w = new ObserveWorkspace(server, { HOOK_SECRET });
    w.cli.scanner.addSecret(HOOK_SECRET, 'webhook secret');
  });
  afterAll(async () => {
    try {
      await w?.scanAndRemove();
    } finally {
      await new Promise((resolve) => receiver?.close(resolve));
      await server?.stop();
    }
  });

  function config(applier: string[]): void {
    const port = (receiver.address() as AddressInfo).port;
    writeFileSync(
      w.config,
      [
        'keys:',
        '  app:',
        '    rotation: { interval: 30d, grace: 1h }',
        `    target: { type: scim, url: "${server.url}", propagationTimeout: 1s, applier: { type: exec, command: ${JSON.stringify(applier)} } }`,
        'notify:',
        '  webhooks:',
        `    - { url: "http://127.0.0.1:${port}/hook", secretRef: "env:HOOK_SECRET", events: [key.lockout, rotation.failed, rotation.rolled_back] }`,
        '',
      ].join('\n'),
    );
  }

  it('rotate ends in lockout: webhook, metrics and status all say so', async () => {
    config(server.hookCommand);
    expect((await w.run(['add', 'app'])).code).toBe(0);
    await w.reveal('app', 'app v1');
    // From now on every apply or rollback leaves the server accepting no token at all.
    config(['sh', '-c', `cat >/dev/null; printf '' > '${server.tokensFile}'`]);
    const metrics = join(w.dir, 'provkey.prom');
    const rotated = await w.run(['--metrics-file', metrics, 'rotate', 'app']);
    expect(rotated.code, describeRun(rotated)).toBe(3);

    expect(bodies.map((b) => [b.type, b.data.key, b.data.outcome])).toEqual([['key.lockout', 'app', 'lockout']]);
    expect(bodies[0]!.data.failedSteps).toEqual(expect.arrayContaining(['test']));

    const text = readFileSync(metrics, 'utf8');
    w.cli.scanner.record('metrics file', text);
    checkExposition(metrics);
    const value = (family: string, labels: Record<string, string>) =>
      Number(parsePrometheus(text).find((f) => f.name === family)?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))?.value);
    expect(value('provkey_key_lockout', { key: 'app' })).toBe(1);
    expect(value('provkey_key_info', { key: 'app', state: 'lockout' })).toBe(1);
    expect(value('provkey_key_last_rotation_outcome', { key: 'app', outcome: 'lockout' })).toBe(1);
    expect(value('provkey_key_last_test_ok', { key: 'app' })).toBe(0);
    expect(value('provkey_run_results', { command: 'rotate', outcome: 'lockout' })).toBe(1);
    expect(value('provkey_run_exit_code', { command: 'rotate' })).toBe(3);

    const status = await w.run(['status']);
    expect(status.code, describeRun(status)).toBe(3);
  });
});
