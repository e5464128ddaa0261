// The fault-simulation matrix (issue 7): every side-effect boundary of every operation, on
// every listed store × target, with every fault that can happen there; after each, one normal
// run must converge and the invariants hold against the real servers (see
// test/harness/fault-matrix/matrix.ts). CI runs a seeded random sample; the full matrix runs
// with PROVKEY_FAULT_FULL=1 (the scheduled workflow). Replay: PROVKEY_FAULT_SEED=<seed>, or one
// case with PROVKEY_FAULT_ONLY="<operation>|<store>|<target>|<boundary>|<fault>". Narrow with
// PROVKEY_FAULT_OPS / _STORES / _TARGETS (comma lists), size the sample with PROVKEY_FAULT_SAMPLE.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STORE_ADAPTERS, TARGET_ADAPTERS, type StoreFixture, type TargetFixture } from '../harness/fault-matrix/adapters.ts';
import { describeCase, enumerateCases, OPERATIONS, runCase, seededRandom, type MatrixCase } from '../harness/fault-matrix/matrix.ts';

const full = process.env.PROVKEY_FAULT_FULL === '1';
const seed = process.env.PROVKEY_FAULT_SEED ?? String(Math.floor(Math.random() * 2 ** 31));
const sampleSet = process.env.PROVKEY_FAULT_SAMPLE !== undefined;
const perCombination = Number(process.env.PROVKEY_FAULT_SAMPLE ?? 5);
const only = process.env.PROVKEY_FAULT_ONLY?.split('|');
const wantedStores = process.env.PROVKEY_FAULT_STORES?.split(',');
const wantedTargets = process.env.PROVKEY_FAULT_TARGETS?.split(',');
const stores = STORE_ADAPTERS.filter((a) => !wantedStores || wantedStores.includes(a.name));
const targets = TARGET_ADAPTERS.filter((a) => !wantedTargets || wantedTargets.includes(a.name));

const storeFixtures = new Map<string, StoreFixture>();
const targetFixtures = new Map<string, TargetFixture>();
const totals = { cases: 0, enumerated: 0, violations: 0, started: Date.now() };

beforeAll(async () => {
  console.log(`fault matrix: ${full ? 'FULL' : `sample of ${perCombination} per combination`}, seed ${seed}`);
  await Promise.all([
    ...stores.map(async (a) => storeFixtures.set(a.name, await a.start())),
    ...targets.map(async (a) => targetFixtures.set(a.name, await a.start())),
  ]);
});

afterAll(async () => {
  console.log(`fault matrix: ${totals.cases} case(s) run of ${totals.enumerated} enumerated, ${totals.violations} violation(s), ${Math.round((Date.now() - totals.started) / 1000)}s, seed ${seed}`);
  await Promise.all([...storeFixtures.values(), ...targetFixtures.values()].map((f) => f.stop()));
});

const wantedOperations = process.env.PROVKEY_FAULT_OPS?.split(',');
const combinations = OPERATIONS.filter((o) => !wantedOperations || wantedOperations.includes(o.name)).flatMap((operation) => stores.flatMap((store) => targets.map((target) => ({ operation, store: store.name, target: target.name }))));

describe('fault matrix: every boundary × every fault converges, with no lockout and nothing left behind', () => {
  it.each(combinations.map((c, i) => ({ ...c, label: `${c.operation.name} × ${c.store} × ${c.target}`, i })))(
    '$label',
    async ({ operation, store, target, i }) => {
      if (only && (only[0] !== operation.name || only[1] !== store || only[2] !== target)) return;
      const storeFixture = storeFixtures.get(store)!;
      const targetFixture = targetFixtures.get(target)!;
      const all = await enumerateCases(operation, store, target, storeFixture, targetFixture);
      totals.enumerated += all.length;
      let chosen: MatrixCase[];
      if (only) chosen = all.filter((c) => c.boundary === Number(only[3]) && c.fault === only[4]);
      else if (full) chosen = all;
      else {
        const random = seededRandom(Number(seed) + i);
        const shuffled = [...all];
        for (let j = shuffled.length - 1; j > 0; j--) {
          const k = Math.floor(random() * (j + 1));
          [shuffled[j], shuffled[k]] = [shuffled[k]!, shuffled[j]!];
        }
        const adapterSample = TARGET_ADAPTERS.find((a) => a.name === target)?.sample;
        chosen = shuffled.slice(0, sampleSet || adapterSample === undefined ? perCombination : adapterSample);
      }
      const failures: string[] = [];
      for (const c of chosen) {
        totals.cases++;
        let violations: string[];
        try {
          violations = await runCase(c, operation, storeFixture, targetFixture);
        } catch (error) {
          violations = [`the case itself failed: ${(error as Error).stack ?? error}`];
        }
        if (violations.length) {
          totals.violations += violations.length;
          failures.push(`${describeCase(c, seed)}\n    - ${violations.join('\n    - ')}`);
        }
      }
      const boundaries = new Set(all.map((c) => c.boundary)).size;
      console.log(`${operation.name} × ${store} × ${target}: ${boundaries} boundaries, ${all.length} case(s) enumerated (boundary × applicable fault), ${chosen.length} run, ${failures.length} failing`);
      expect(failures, failures.join('\n')).toEqual([]);
    },
    full ? 3_600_000 : 600_000,
  );
});
