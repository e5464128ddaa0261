import type { Probe } from '../target.js';

/**
 * What a connection test learns about the SCIM server rather than about the key: whether it
 * checks bearer tokens at all (the wrong-token probe), whether it serves its
 * ServiceProviderConfig, whether it pages users as Okta asks. In a batch of keys on one server
 * that is asked once per run, not once per key (issue 8).
 *
 * Only a passing (or definitely unsupported) answer is kept. A failure is handed to every key
 * that was waiting for that same request, each reports it as its own, and the next key asks
 * again: an error is never remembered as a success, nor a passing answer invented.
 */
export class ScimServerFacts {
  readonly #known = new Map<string, Promise<Probe>>();

  /**
   * The probe's answer for `server` (base URL + TLS settings). The first caller sends it;
   * callers while it is in flight share it; later callers get the kept answer, marked as such.
   */
  async probe(server: string, name: string, send: () => Promise<Probe>): Promise<Probe> {
    const fact = `${name} ${server}`;
    const known = this.#known.get(fact);
    if (known) return reused(await known);
    const asked = send().then(
      (probe) => {
        if (probe.outcome === 'fail' || probe.outcome === 'skipped') this.#known.delete(fact);
        return probe;
      },
      (error: unknown) => {
        this.#known.delete(fact);
        throw error;
      },
    );
    this.#known.set(fact, asked);
    return asked;
  }
}

function reused(probe: Probe): Probe {
  // A failure is reported as it was found; only a kept answer says where it came from.
  if (probe.outcome === 'fail' || probe.outcome === 'skipped') return probe;
  const note = 'asked once per server in this run';
  return { ...probe, ms: 0, detail: probe.detail ? `${probe.detail} (${note})` : note };
}

/** The run's facts, shared by every SCIM target of one run through the adapter context. */
export function serverFactsOf(runScope: Map<string, unknown> | undefined): ScimServerFacts {
  if (!runScope) return new ScimServerFacts();
  let facts = runScope.get('scim.server-facts');
  if (!(facts instanceof ScimServerFacts)) {
    facts = new ScimServerFacts();
    runScope.set('scim.server-facts', facts);
  }
  return facts as ScimServerFacts;
}
