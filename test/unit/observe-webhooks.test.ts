import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { keyDone } from '../../src/engine/events.ts';
import type { KeyResult } from '../../src/engine/result.ts';
import { eventsFor } from '../../src/observe/observer.ts';
import { checkWebhookUrl, signingKey, signPayload } from '../../src/observe/webhooks.ts';

const result = (operation: string, outcome: KeyResult['outcome']): KeyResult => ({ key: 'k', operation, outcome, ok: outcome === 'rotated' || outcome === 'revoked', exitCode: 0, message: 'm', fingerprint: 'sha256:0123456789ab', steps: [{ step: 'set', ok: false, ms: 1 }], tests: [], ms: 3 });

describe('webhook signatures', () => {
  it('match the standardwebhooks reference implementation', () => {
    const secret = `whsec_${randomBytes(24).toString('base64')}`;
    const at = new Date('2026-12-01T10:00:00Z');
    const body = JSON.stringify({ type: 'rotation.succeeded', data: { key: 'k' } });
    expect(signPayload(signingKey(secret, 'x'), 'msg_1', at.getTime() / 1000, body)).toBe(new Webhook(secret).sign('msg_1', at, body));
  });
  it('refuse a secret that is not whsec_ base64 of 16+ bytes', () => {
    expect(() => signingKey('whsec_AAAA', 'f')).toThrow(/^f: must resolve/);
    expect(() => signingKey(randomBytes(24).toString('base64'), 'f')).toThrow();
  });
  it('plain http only to loopback unless allowed; no credentials in the URL, never echoed', () => {
    expect(checkWebhookUrl('http://127.0.0.1:8/x', false, 'u').hostname).toBe('127.0.0.1');
    expect(() => checkWebhookUrl('http://hooks.example/x', false, 'u')).toThrow(/http:\/\/ is refused/);
    expect(checkWebhookUrl('http://hooks.example/x', true, 'u').protocol).toBe('http:');
    expect(() => checkWebhookUrl('https://user:pw@hooks.example/x', false, 'u')).toThrow(/credentials/);
    expect(() => checkWebhookUrl('not a url secretpath', false, 'u')).toThrow(/^u: not a valid URL$/);
  });
});

describe('webhook events from the engine\'s key-done events', () => {
  const now = new Date('2026-12-01T10:00:00Z');
  const types = (results: KeyResult[]) => eventsFor('rotate', results.map(keyDone), [], 0, now).map((e) => e.type);
  it('each outcome maps to its event; nothing for outcomes that are not news', () => {
    expect(types([result('rotate', 'rotated'), result('rotate', 'resumed'), result('rotate', 'failed'), result('rotate', 'rolled_back')])).toEqual(['rotation.succeeded', 'rotation.succeeded', 'rotation.failed', 'rotation.rolled_back']);
    expect(types([result('rotate', 'lockout'), result('test', 'lockout'), result('revoke', 'revoked'), result('revoke', 'failed')])).toEqual(['key.lockout', 'key.lockout', 'key.revoked', 'revoke.failed']);
    expect(types([result('rotate', 'skipped'), result('test', 'tested'), result('test', 'failed')])).toEqual([]);
  });
  it('bodies carry fingerprints, outcomes and failed steps', () => {
    const [event] = eventsFor('rotate', [keyDone(result('rotate', 'failed'))], [], 0, now);
    expect(event!.data).toMatchObject({ schemaVersion: 1, key: 'k', outcome: 'failed', fingerprint: 'sha256:0123456789ab', failedSteps: ['set'] });
  });
});
