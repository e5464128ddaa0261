import type { Consumer, ConsumerAnswer } from '../consumers/consumer.js';
import { exitCodeForTargetAnswer, type ExitCode } from '../core/errors.js';
import type { ConsumerProgress, ConsumerProof, KeyRecord } from '../core/model.js';
import type { SecretInUse } from '../targets/target.js';
import type { KeyContext } from './key-context.js';
import type { StepName } from './events.js';
import type { StepTimer } from './result.js';

/**
 * Step 5 of the rotation protocol (DESIGN.md "deliver"): after the target accepts the new
 * version, each consumer in config order validates it, switches to it and proves it healthy.
 * The claim records each consumer's progress before and after its switch, so a run killed at
 * any point knows which consumers may already present the new version: a resumed run finishes
 * the delivery (the target accepts the new version) or gives those consumers the current version
 * back (rollback), always consumers first, then the target.
 *
 * Without overlap at the target (drills, grace 0, one token per app) the consumers still present
 * the old token between the target's set and their own switch: that is the outage window, kept
 * to those two steps (docs/consumers.md).
 */

export type DeliveryFailure = {
  ok: false;
  consumer: string;
  step: 'validate' | 'switch' | 'prove';
  answer: Extract<ConsumerAnswer, { ok: false }>;
  /** Why, for the rollback message. */
  reason: string;
  /** The exit code the rotation ends with once rolled back: a refused Graph permission stays exit 6, an outage exit 5. */
  exitCode: ExitCode;
};

export async function keyConsumers(ctx: KeyContext): Promise<Consumer[]> {
  return ctx.session.consumersFor(ctx.key);
}

/** Delivers `next` to every consumer not yet proven with it; the record comes back with the claim's progress. */
export async function deliverToConsumers(ctx: KeyContext, start: KeyRecord, next: SecretInUse, timer: StepTimer): Promise<{ ok: true; record: KeyRecord } | (DeliveryFailure & { record: KeyRecord })> {
  const consumers = await keyConsumers(ctx);
  let record = start;
  const name = ctx.key.name;
  for (const consumer of consumers) {
    const progress = record.state.claim?.consumers?.[consumer.name];
    if (progress === 'proven') continue;
    const step = (s: ConsumerStep) => ctx.session.emit({ type: 'step-start', key: name, step: s, detail: consumer.name });
    // A consumer already switched (a resumed run) has validated this version once; asking again is harmless, but switching back is not needed.
    if (progress !== 'switched') {
      await step('consumer-validate');
      const validated = await timer.run('consumer-validate', () => consumer.validate(next), describe(consumer));
      if (!validated.ok) return { ...failure(consumer, 'validate', validated), record };
      record = await markConsumer(ctx, record, consumer.name, 'switching');
      // A change at a third party (the identity provider's saved token): audited before it is made.
      await ctx.session.emit({ type: 'audit', event: 'consumer.switching', key: name, fingerprint: next.fingerprint, versionId: next.versionId, detail: { consumer: consumer.name } });
      await step('consumer-switch');
      const switched = await timer.run('consumer-switch', () => consumer.switch(next), describe(consumer));
      if (!switched.ok) {
        // An answered refusal means nothing changed there: only an outage leaves the switch in doubt (and to be undone).
        if (switched.reason !== 'unreachable') record = await markConsumer(ctx, record, consumer.name, undefined);
        return { ...failure(consumer, 'switch', switched), record };
      }
      record = await markConsumer(ctx, record, consumer.name, 'switched');
    }
    await step('consumer-prove');
    const proven = await timer.run('consumer-prove', () => consumer.prove(next), describe(consumer));
    if (!proven.ok) return { ...failure(consumer, 'prove', proven), record };
    record = await markConsumer(ctx, record, consumer.name, 'proven', { ok: true, at: new Date().toISOString(), fingerprint: next.fingerprint, ...(proven.detail ? { detail: proven.detail } : {}) });
  }
  return { ok: true, record };
}

/**
 * Rollback, consumers first (in reverse order): every consumer that may present `next`
 * (switching, switched or proven) gets `current` back. Undefined when every one is back (or none
 * was touched); otherwise why not, and whether that is an outage (retry later) or a refusal.
 */
export async function restoreConsumers(ctx: KeyContext, current: SecretInUse | undefined, timer: StepTimer): Promise<{ detail: string; unavailable: boolean } | undefined> {
  // A key without consumers (or `add`, with no earlier version to give back) has nothing to restore: no extra store read.
  if (ctx.key.config.consumers.length === 0 || !current) return undefined;
  let record = await ctx.store.read(ctx.key.name);
  const touched = record?.state.claim?.consumers;
  if (!record || !touched) return undefined;
  const consumers = (await keyConsumers(ctx)).filter((c) => touched[c.name] !== undefined && touched[c.name] !== 'restored').reverse();
  if (consumers.length === 0) return undefined;
  for (const consumer of consumers) {
    await ctx.session.emit({ type: 'audit', event: 'consumer.restoring', key: ctx.key.name, fingerprint: current.fingerprint, versionId: current.versionId, detail: { consumer: consumer.name } });
    await ctx.session.emit({ type: 'step-start', key: ctx.key.name, step: 'consumer-restore', detail: consumer.name });
    const restored = await timer.run('consumer-restore', () => consumer.switch(current), describe(consumer));
    if (!restored.ok) return { detail: `consumer ${consumer.name} could not be given ${current.fingerprint} back (${restored.reason}: ${restored.detail})`, unavailable: restored.reason === 'unreachable' };
    record = await markConsumer(ctx, record, consumer.name, 'restored');
  }
  return undefined;
}

/** `test`: every consumer's own check with the current version, stored as its last proof for `status`. */
export async function checkConsumers(ctx: KeyContext, current: SecretInUse, timer: StepTimer): Promise<Array<{ name: string; answer: ConsumerAnswer }>> {
  const consumers = await keyConsumers(ctx);
  const results: Array<{ name: string; answer: ConsumerAnswer }> = [];
  for (const consumer of consumers) {
    const answer = await timer.run('consumer-check', () => consumer.check(current), describe(consumer));
    results.push({ name: consumer.name, answer });
  }
  return results;
}

export function proofsOf(results: Array<{ name: string; answer: ConsumerAnswer }>, current: SecretInUse): Record<string, ConsumerProof> {
  const at = new Date().toISOString();
  return Object.fromEntries(results.map(({ name, answer }) => [name, { ok: answer.ok, at, fingerprint: current.fingerprint, ...(answer.detail ? { detail: answer.detail } : {}) }]));
}

/** Stores one consumer's progress in the claim (undefined: it never changed); with a proof, also its last proof for `status`. */
async function markConsumer(ctx: KeyContext, record: KeyRecord, consumer: string, progress: ConsumerProgress | undefined, proof?: ConsumerProof): Promise<KeyRecord> {
  const claim = record.state.claim!;
  const { [consumer]: _previous, ...others } = claim.consumers ?? {};
  return ctx.store.update(ctx.key.name, record.revision, {
    versions: record.versions,
    state: {
      ...record.state,
      claim: { ...claim, consumers: progress ? { ...others, [consumer]: progress } : others },
      ...(proof ? { consumerProofs: { ...record.state.consumerProofs, [consumer]: proof } } : {}),
    },
  });
}

function failure(consumer: Consumer, step: DeliveryFailure['step'], answer: Extract<ConsumerAnswer, { ok: false }>): DeliveryFailure {
  const verb = step === 'validate' ? 'did not validate' : step === 'switch' ? 'could not switch to' : 'is not healthy with';
  return {
    ok: false,
    consumer: consumer.name,
    step,
    answer,
    reason: `consumer ${consumer.name} ${verb} the new version (${answer.reason}: ${answer.detail})`,
    exitCode: exitCodeForTargetAnswer(answer.reason),
  };
}

/** The consumer steps (events.ts StepName: a closed set; the consumer's name leads the detail). */
export type ConsumerStep = Extract<StepName, `consumer-${string}`>;

function describe(consumer: Consumer): (answer: ConsumerAnswer) => { ok: boolean; detail: string } {
  return (answer) => (answer.ok ? { ok: true, detail: `${consumer.name}${answer.detail ? `: ${answer.detail}` : ''}` } : { ok: false, detail: `${consumer.name}: ${answer.reason}: ${answer.detail}` });
}
