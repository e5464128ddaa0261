import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/located.ts';
import { versionByLabel } from '../../src/core/model.ts';
import { addKey } from '../../src/engine/add.ts';
import { forEachKey } from '../../src/engine/batch.ts';
import type { EngineEvent } from '../../src/engine/events.ts';
import { openKey } from '../../src/engine/key-context.ts';
import { rotateKey } from '../../src/engine/rotate.ts';
import { SessionAborted } from '../../src/engine/seam.ts';
import { Session } from '../../src/engine/session.ts';
import { ScriptedTargetDouble } from './scripted-target-double.ts';

// The engine's one event stream over a real file store and audit log, with a scripted target
// double: what subscribers hear, in which order, and that only the audit log can stop a run.
let dir: string;
let target: ScriptedTargetDouble;

function session(options: Partial<ConstructorParameters<typeof Session>[0]> = {}) {
  const config = parseConfigText(
    'keys:\n  a:\n    rotation: { interval: 30d, grace: 1h }\n    target: { type: scim, url: "http://127.0.0.1:9/scim/v2", applier: { type: store } }',
    path.join(dir, 'provkey.yaml'),
  );
  return new Session({ config, openTarget: async () => target, ...options });
}

async function withAdded(s: Session) {
  const ctx = await openKey(s, 'a');
  expect((await addKey(ctx)).outcome).toBe('added');
  return ctx;
}

const label = (e: EngineEvent) => (e.type === 'step-start' ? `step:${e.step}` : e.type === 'step-done' ? `done:${e.step}:${e.ok}` : e.type === 'audit' ? `audit:${e.event}` : e.type);

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'provkey-events-'));
  writeFileSync(path.join(dir, 'provkey.yaml'), '');
  target = new ScriptedTargetDouble();
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('the engine event stream', () => {
  it('a rotation is told step by step, audited before its outcome, with its duration; every audit event is in the log', async () => {
    const seen: EngineEvent[] = [];
    const s = session({ subscribers: [(e) => void seen.push(e)] });
    await withAdded(s);
    seen.length = 0;
    const [result] = await forEachKey(s, ['a'], 'rotate', (ctx) => rotateKey(ctx));
    expect(result!.outcome).toBe('rotated');
    expect(seen.map(label)).toEqual([
      'run-start',
      'key-start',
      'step:claim',
      // The embedded store's compare-and-set is native: the claim stores the pending version too.
      'done:claim:true',
      'step:set',
      'done:set:true',
      'step:test',
      'done:test:true',
      'step:finish',
      'audit:rotate.finished',
      'done:finish:true',
      'key-done',
      'run-done',
    ]);
    const done = seen.find((e) => e.type === 'key-done')!;
    expect(done).toMatchObject({ key: 'a', operation: 'rotate', outcome: 'rotated', ok: true, exitCode: 0, durationMs: result!.ms });
    // Each step-done event is the step the result reports, with the same duration.
    const stepsDone = seen.flatMap((e) => (e.type === 'step-done' ? [{ step: e.step, ok: e.ok, ms: e.durationMs }] : []));
    expect(stepsDone).toEqual(result!.steps.map((st) => ({ step: st.step, ok: st.ok, ms: st.ms })));
    const logged = (await s.audit.readAll()).map((line) => line.event);
    for (const e of seen) if (e.type === 'audit') expect(logged).toContain(e.event);
    await s.close();
  });

  it('best-effort subscribers that throw, reject or never settle do not fail a rotation, nor stop it committing', async () => {
    const s = session({
      subscribers: [
        () => {
          throw new Error('progress bar broke');
        },
        async () => {
          throw new Error('webhook receiver down');
        },
        () => new Promise<void>(() => {}),
      ],
    });
    const ctx = await withAdded(s);
    const before = versionByLabel((await ctx.store.read('a'))!, 'current')!;
    const result = await rotateKey(ctx);
    expect(result).toMatchObject({ outcome: 'rotated', ok: true, exitCode: 0 });
    const after = (await ctx.store.read('a'))!;
    expect(versionByLabel(after, 'current')!.fingerprint).toBe(result.fingerprint);
    expect(versionByLabel(after, 'current')!.id).not.toBe(before.id);
    expect(after.state.claim).toBeUndefined();
    await s.close();
    expect(s.events.failures).toBeGreaterThan(0);
  });

  it('a failing audit subscriber stops the rotation before the store commits it', async () => {
    const s = session();
    const ctx = await withAdded(s);
    const before = versionByLabel((await ctx.store.read('a'))!, 'current')!;
    s.events.subscribeAwaited((e) => {
      if (e.type === 'audit' && e.event === 'rotate.finished') throw new Error('audit disk full');
    });
    await expect(rotateKey(ctx)).rejects.toThrow('audit disk full');
    const after = (await ctx.store.read('a'))!;
    expect(versionByLabel(after, 'current')!.id).toBe(before.id);
    expect(after.state.claim).toBeDefined();
    await s.close();
  });

  it('the audit append goes through the seam: a crash there leaves the change uncommitted and tells no best-effort subscriber', async () => {
    const seen: EngineEvent[] = [];
    let armed = false;
    const s = session({
      subscribers: [(e) => void seen.push(e)],
      faultHook: (call) => (armed && call.boundary === 'audit' && call.operation === 'append' ? 'kill-before' : undefined),
    });
    const ctx = await withAdded(s);
    const before = versionByLabel((await ctx.store.read('a'))!, 'current')!;
    armed = true;
    await expect(rotateKey(ctx)).rejects.toBeInstanceOf(SessionAborted);
    const reread = session();
    const after = (await (await openKey(reread, 'a')).store.read('a'))!;
    expect(versionByLabel(after, 'current')!.id).toBe(before.id);
    expect(seen.filter((e) => e.type === 'audit' && e.event === 'rotate.finished')).toEqual([]);
    await reread.close();
  });
});
