// A crash at every new step of the protocol with consumers (issue 10) converges: for add, rotate
// with and without overlap, and the compromise drill, with each consumer kind (entra through the
// Graph double, okta through its double, file, exec), the process is abandoned just before and
// just after every consumer call and every store write around them (the claim's progress), then
// one normal run must leave the key with one current version the real SCIM app accepts and the
// consumer holds (test/harness/fault-matrix/matrix.ts checks every invariant). Not sampled: every
// such case runs. One case per consumer is also a real SIGKILL of the CLI subprocess.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeRun, runProvkey } from '../harness/cli.ts';
import { CONSUMER_ADAPTERS, STORE_ADAPTERS, TARGET_ADAPTERS, type ConsumerFixture, type StoreFixture, type TargetFixture } from '../harness/fault-matrix/adapters.ts';
import { describeCase, enumerateCases, freshCase, KEY, OPERATIONS, runCase, type MatrixCase } from '../harness/fault-matrix/matrix.ts';

const OPERATION_NAMES = ['add', 'rotate (overlap)', 'rotate (no overlap)', 'drill compromise'];
let store: StoreFixture;
let target: TargetFixture;
const consumers = new Map<string, ConsumerFixture>();

beforeAll(async () => {
  store = await STORE_ADAPTERS.find((a) => a.name === 'file')!.start();
  target = await TARGET_ADAPTERS.find((a) => a.name === 'scim')!.start();
  for (const adapter of CONSUMER_ADAPTERS) consumers.set(adapter.name, await adapter.start());
});
afterAll(async () => {
  await Promise.all([store, target, ...consumers.values()].map((f) => f?.stop()));
});

/** The kills at every consumer call, and at every call between the first and the last of them (the claim's progress writes). */
function newStepKills(all: MatrixCase[]): MatrixCase[] {
  const consumerCalls = all.filter((c) => c.call.startsWith('consumer.')).map((c) => c.boundary);
  const first = Math.min(...consumerCalls);
  const last = Math.max(...consumerCalls);
  return all.filter((c) => (c.fault === 'kill-before' || c.fault === 'kill-after') && c.boundary >= first && c.boundary <= last + 1);
}

describe('a crash at every new step with consumers converges', () => {
  const combinations = OPERATION_NAMES.flatMap((operation) => CONSUMER_ADAPTERS.map((consumer) => ({ operation, consumer: consumer.name })));
  it.each(combinations)(
    '$operation × consumer $consumer',
    async ({ operation: operationName, consumer: consumerName }) => {
      const operation = OPERATIONS.find((o) => o.name === operationName)!;
      const consumer = consumers.get(consumerName)!;
      const all = await enumerateCases(operation, 'file', 'scim', store, target, { name: consumerName, fixture: consumer });
      const chosen = newStepKills(all);
      expect(chosen.length, 'the operation has consumer steps').toBeGreaterThanOrEqual(6);
      const failures: string[] = [];
      for (const c of chosen) {
        const violations = await runCase(c, operation, store, target, consumer);
        if (violations.length) failures.push(`${describeCase(c, 'none')}\n    - ${violations.join('\n    - ')}`);
      }
      expect(failures, failures.join('\n')).toEqual([]);
    },
    600_000,
  );

  it.each(CONSUMER_ADAPTERS.map((a) => a.name))('a real SIGKILL just after consumer %s switched converges', async (consumerName) => {
    const operation = OPERATIONS.find((o) => o.name === 'rotate (overlap)')!;
    const consumer = consumers.get(consumerName)!;
    const all = await enumerateCases(operation, 'file', 'scim', store, target, { name: consumerName, fixture: consumer });
    const switchCall = all.find((c) => c.call.startsWith('consumer.switch') && c.fault === 'kill-after')!;
    const fixture = await freshCase(operation, store, target, consumer);
    const killed = await runProvkey(['--config', fixture.config, ...operation.run], { cwd: fixture.dir, env: { PROVKEY_FAULT_AT: `${switchCall.boundary}:kill-after` } });
    expect(killed.signal, describeRun(killed)).toBe('SIGKILL');
    const again = await runProvkey(['--config', fixture.config, ...operation.run], { cwd: fixture.dir });
    expect(again.code, describeRun(again)).toBe(0);
    expect(again.stdout + again.stderr).toContain('interrupted');
    const { record } = await fixture.record();
    const { current } = await fixture.liveValues(record!);
    expect(record!.state.claim).toBeUndefined();
    expect(await target.accepts(current!)).toBe(true);
    expect(await consumer.holds(fixture.id, current!), `consumer ${consumerName} holds the current version`).toBe(true);
    fixture.scanSecrets();
    void KEY;
  });
});
