// The concurrent-claim proof for the azure store: N separate PROCESSES read the same revision,
// wait at a barrier, and all try to claim the key at once, round after round. Key Vault has no
// compare-and-set; the append-only state chain (src/stores/azure/chain.ts) must still give
// exactly one winner per round, and the store must then hold that winner's claim.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as v from 'valibot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storeSchema } from '../../src/config/schema.js';
import { fingerprint } from '../../src/core/fingerprint.js';
import { DOCUMENTED_PERMISSIONS, AZURE_TIER_KINDS, azureTierSkipReason, startAzureTier, type AzureTier } from '../harness/servers/azure-fixture.ts';

const WORKER = fileURLToPath(new URL('../harness/servers/azure-claim-worker.ts', import.meta.url));
const ROUNDS = Number(process.env.PROVKEY_TEST_CLAIM_ROUNDS ?? 10);

class Contender {
  private readonly child: ChildProcess;
  private readonly lines: Interface;
  private readonly queue: string[] = [];
  private waiting: ((line: string) => void) | undefined;

  constructor() {
    this.child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', WORKER], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.lines = createInterface({ input: this.child.stdout! });
    this.lines.on('line', (line) => {
      if (this.waiting) {
        const resolve = this.waiting;
        this.waiting = undefined;
        resolve(line);
      } else this.queue.push(line);
    });
  }

  /** Sends one command and waits for its one-line answer. */
  ask(line: string): Promise<string> {
    this.child.stdin!.write(`${line}\n`);
    return this.next();
  }

  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  next(): Promise<string> {
    const queued = this.queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve) => (this.waiting = resolve));
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      if (this.child.exitCode !== null) return resolve();
      this.child.once('exit', () => resolve());
      this.child.stdin!.end('exit\n');
    });
  }
}


// The double also runs with its strict clock and the store without a settle
// (emulator.strictlyIncreasingCreatedOn): the mode the fault matrix uses must hold up too.
for (const { kind, strictClock } of [...AZURE_TIER_KINDS.map((kind) => ({ kind, strictClock: false })), { kind: 'double' as const, strictClock: true }]) {
  const skipped = azureTierSkipReason(kind);
  const tierName = strictClock ? `${kind} (strict clock, no settle)` : kind;
  describe.skipIf(skipped !== undefined)(`azure claim exclusivity, ${tierName} tier${skipped ? ` — SKIPPED: ${skipped}` : ''}`, () => {
    let tier: AzureTier;
    beforeAll(async () => {
      tier = await startAzureTier(kind, { strictClock });
      await tier.restrict(DOCUMENTED_PERMISSIONS);
    });
    afterAll(async () => tier?.stop());

    for (const processes of [2, 8]) {
      it(`${processes} processes, ${ROUNDS} rounds: exactly one winner each round`, async () => {
        const store = await tier.openStore();
        const key = `claim-${processes}-${randomBytes(4).toString('hex')}`;
        const secret = `pk_claim_${randomBytes(12).toString('hex')}`;
        const at = new Date().toISOString();
        await store.addVersion(key, undefined, secret, { label: 'current', fingerprint: fingerprint(secret), createdAt: at, labelledAt: at, origin: 'generated' });
        const config = v.parse(storeSchema, tier.storeSection());
        const contenders = Array.from({ length: processes }, () => new Contender());
        const winnersPerRound: number[] = [];
        try {
          const started = await Promise.all(contenders.map((c) => c.ask(JSON.stringify({ config, env: tier.env }))));
          expect(started).toEqual(contenders.map(() => 'ready'));
          for (let round = 0; round < ROUNDS; round++) {
            // Everyone reads the same revision first …
            const reads = await Promise.all(contenders.map((c) => c.ask(`read ${key}`)));
            expect(new Set(reads).size, reads.join(', ')).toBe(1);
            // … then the barrier opens: every claim is sent before any answer is awaited.
            const ids = contenders.map((_, i) => `r${round}-p${i}`);
            contenders.forEach((c, i) => c.send(`claim ${ids[i]}`));
            const results = await Promise.all(contenders.map((c) => c.next()));
            expect(results.filter((r) => r.startsWith('error')), results.join(', ')).toEqual([]);
            const winners = results.flatMap((r, i) => (r === 'won' ? [i] : []));
            winnersPerRound.push(winners.length);
            expect(winners, `round ${round}: ${results.join(', ')}`).toHaveLength(1);
            expect((await store.read(key))?.state.claim?.id).toBe(ids[winners[0]!]);
          }
        } finally {
          await Promise.all(contenders.map((c) => c.stop()));
          await store.deleteKey(key).catch(() => undefined);
          await store.close();
        }
        console.log(`[claim proof] ${tierName}: ${processes} processes × ${ROUNDS} rounds, winners per round: ${winnersPerRound.join(' ')}`);
        expect(winnersPerRound).toEqual(Array.from({ length: ROUNDS }, () => 1));
      }, 600_000);
    }
  });
}
