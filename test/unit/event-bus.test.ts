import { describe, expect, it } from 'vitest';
import type { EngineEvent } from '../../src/engine/events.ts';
import { EventBus } from '../../src/engine/events-bus.ts';

// The bus alone: who is awaited, who is only told, and in which order.
const step = (n: number): EngineEvent => ({ type: 'step-start', key: `k${n}`, step: 'set' });
const audit: EngineEvent = { type: 'audit', event: 'rotate.finished', key: 'k', outcome: 'ok', fingerprint: 'sha256:0123456789ab' };

describe('the engine event bus', () => {
  it('tells awaited subscribers first, in order, then the best-effort ones, each in emit order', async () => {
    const bus = new EventBus();
    const seen: string[] = [];
    bus.subscribe((e) => void seen.push(`late:${e.type}:${'key' in e ? e.key : ''}`));
    bus.subscribeAwaited(async (e) => {
      await Promise.resolve();
      seen.push(`audit1:${e.type}:${'key' in e ? e.key : ''}`);
    });
    bus.subscribeAwaited((e) => void seen.push(`audit2:${e.type}:${'key' in e ? e.key : ''}`));
    await bus.emit(step(1));
    await bus.emit(step(2));
    expect(seen).toEqual(['audit1:step-start:k1', 'audit2:step-start:k1', 'late:step-start:k1', 'audit1:step-start:k2', 'audit2:step-start:k2', 'late:step-start:k2']);
  });

  it('a throwing or rejecting best-effort subscriber fails nothing: emit resolves, the others are told, the failure is counted', async () => {
    const reported: string[] = [];
    const bus = new EventBus({ onFailure: (error, e) => reported.push(`${e.type}: ${(error as Error).message}`) });
    const told: EngineEvent[] = [];
    bus.subscribe(() => {
      throw new Error('progress bar broke');
    });
    bus.subscribe(async () => {
      throw new Error('webhook broke');
    });
    bus.subscribe((e) => void told.push(e));
    await expect(bus.emit(step(1))).resolves.toBeUndefined();
    await bus.drain(1000);
    expect(told).toEqual([step(1)]);
    expect(bus.failures).toBe(2);
    expect(reported.sort()).toEqual(['step-start: progress bar broke', 'step-start: webhook broke']);
  });

  it('a best-effort subscriber that never settles blocks neither emit nor drain beyond its bound', async () => {
    const bus = new EventBus();
    bus.subscribe(() => new Promise<void>(() => {}));
    await bus.emit(step(1));
    await bus.drain(5);
    expect(bus.failures).toBe(0);
  });

  it('a failing awaited subscriber makes emit reject, and the best-effort ones never hear of that event', async () => {
    const bus = new EventBus();
    const told: EngineEvent[] = [];
    bus.subscribeAwaited((e) => {
      if (e.type === 'audit') throw new Error('audit log full');
    });
    bus.subscribe((e) => void told.push(e));
    await expect(bus.emit(audit)).rejects.toThrow('audit log full');
    await bus.emit(step(1));
    expect(told).toEqual([step(1)]);
  });

  it('an unsubscribed subscriber is told nothing more', async () => {
    const bus = new EventBus();
    const told: EngineEvent[] = [];
    const stop = bus.subscribe((e) => void told.push(e));
    await bus.emit(step(1));
    stop();
    await bus.emit(step(2));
    expect(told).toEqual([step(1)]);
  });
});
