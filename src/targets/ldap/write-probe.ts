import { randomBytes } from 'node:crypto';
import { Attribute, Change, type Client } from 'ldapts';
import { directProbeEffect, type Probe, type ProbeEffect, type ProbeStep } from '../target.js';
import { classifyLdapError } from './result-codes.js';

/**
 * The provisioning write probe (`test --write`, drills): what the integration itself does,
 * done once under a staging OU on a connection bound as the service account: add a throw-away
 * entry, add it to a group, modify an attribute, delete it. Each step is one probe with its
 * result code and time. A leftover entry from an interrupted probe (its name says provkey
 * made it) is found and removed first. Each step is one side effect through the engine's seam
 * (`effect`): the fault matrix can kill the session or cut the directory off at any of them.
 */

export interface WriteProbeConfig {
  /** The staging OU the throw-away entry is created in. */
  base: string;
  /** A group (member attribute) the entry is added to and removed from. */
  group?: string;
}

/** Entries under `base` whose cn starts with this were made by a probe. */
export const PROBE_PREFIX = 'provkey-probe-';

type Scrub = (text: string) => string;

async function step(name: string, seamStep: ProbeStep, work: () => Promise<string>, options: { scrub: Scrub; effect: ProbeEffect }): Promise<Probe> {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  // The directory's own errors become values inside the seam call; what the seam throws
  // (the session was abandoned) is not a failed step and ends the test.
  const ran = await options.effect(seamStep, () => work().then((detail) => ({ ok: true as const, detail }), (error: unknown) => ({ ok: false as const, error })));
  if (!ran.ok) {
    const { fault } = ran;
    return { name, outcome: 'fail', ...(fault.status === undefined ? {} : { status: fault.status }), ms: ms(), detail: fault.detail };
  }
  if (ran.value.ok) return { name, outcome: 'pass', status: 0, ms: ms(), detail: ran.value.detail };
  const failure = classifyLdapError(ran.value.error, options.scrub);
  return { name, outcome: 'fail', status: failure.status, ms: ms(), detail: failure.detail };
}

function memberChange(operation: 'add' | 'delete', dn: string): Change {
  return new Change({ operation, modification: new Attribute({ type: 'member', values: [dn] }) });
}

/** The throw-away entry: a disabled user on AD (no password), an inetOrgPerson elsewhere. */
function entryFor(id: string, activeDirectory: boolean): Record<string, string | string[]> {
  const cn = `${PROBE_PREFIX}${id}`;
  if (activeDirectory) {
    // ACCOUNTDISABLE | NORMAL_ACCOUNT: it never has a password and can never bind.
    return { objectClass: ['top', 'person', 'organizationalPerson', 'user'], cn, sAMAccountName: `pkprobe-${id}`, userAccountControl: '514', description: 'provkey write probe' };
  }
  return { objectClass: ['top', 'person', 'organizationalPerson', 'inetOrgPerson'], cn, sn: 'provkey write probe', description: 'provkey write probe' };
}

export async function probeWrites(client: Client, config: WriteProbeConfig, options: { activeDirectory: boolean; scrub: Scrub; effect?: ProbeEffect }): Promise<Probe[]> {
  const via = { scrub: options.scrub, effect: options.effect ?? directProbeEffect };
  const probes: Probe[] = [];
  probes.push(await step('write-cleanup', 'cleanup', async () => {
    const found = await client.search(config.base, { scope: 'one', filter: `(cn=${PROBE_PREFIX}*)`, attributes: ['1.1'] });
    for (const entry of found.searchEntries) {
      if (config.group) await client.modify(config.group, [memberChange('delete', entry.dn)]).catch(() => undefined);
      await client.del(entry.dn);
    }
    return found.searchEntries.length ? `removed ${found.searchEntries.length} leftover probe entr${found.searchEntries.length === 1 ? 'y' : 'ies'} from an interrupted run` : 'no leftover probe entry';
  }, via));
  if (probes[0]!.outcome === 'fail') return probes;

  const id = randomBytes(6).toString('hex');
  const dn = `cn=${PROBE_PREFIX}${id},${config.base}`;
  const added = await step('write-add', 'add', async () => {
    await client.add(dn, entryFor(id, options.activeDirectory));
    return `added ${dn}`;
  }, via);
  probes.push(added);
  if (added.outcome === 'fail') return probes;

  const grouped = config.group
    ? await step('write-group', 'group', async () => {
        await client.modify(config.group!, [memberChange('add', dn)]);
        return `added to ${config.group}`;
      }, via)
    : ({ name: 'write-group', outcome: 'skipped', ms: 0, detail: 'no writeProbe.group configured' } as Probe);
  probes.push(grouped);
  probes.push(await step('write-modify', 'modify', async () => {
    await client.modify(dn, [new Change({ operation: 'replace', modification: new Attribute({ type: 'description', values: [`provkey write probe ${new Date().toISOString()}`] }) })]);
    return 'description replaced';
  }, via));
  probes.push(await step('write-delete', 'delete', async () => {
    if (config.group && grouped.outcome === 'pass') await client.modify(config.group, [memberChange('delete', dn)]);
    await client.del(dn);
    return `deleted ${dn}`;
  }, via));
  return probes;
}

/** The probe that says there is nothing to run. */
export function writeProbeNotConfigured(): Probe {
  return { name: 'write', outcome: 'unsupported', ms: 0, detail: 'no writeProbe configured (writeProbe.base: a staging OU the account may write to); bind, Who am I? and the search under searchBase are the proof' };
}
