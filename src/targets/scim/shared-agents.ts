import type http from 'node:http';

/**
 * Keep-alive agents shared by every SCIM target of one run (issue 8): in a batch of keys on
 * one server, each key used to have its own agent, so every key opened its own connection
 * (and, over HTTPS, made its own TLS handshake). Agents are shared only between clients with
 * the same trust settings (the `name`: plain HTTP, or HTTPS with a given CA file), and Node's
 * agent keeps separate pools per host, port and TLS server name, so a connection is only
 * reused for the same server under the same trust decision. Each request carries its own
 * Authorization header: nothing of one key's request stays on the connection for the next.
 *
 * Counted: an agent is destroyed when the last client holding it closes.
 */
export class SharedAgents {
  readonly #agents = new Map<string, { agent: Promise<http.Agent>; holders: number }>();

  /** The agent for `name`, made by `make` on first use; a failed `make` is forgotten (a fixed CA file works next time). */
  acquire(name: string, make: () => Promise<http.Agent>): Promise<http.Agent> {
    let entry = this.#agents.get(name);
    if (!entry) {
      const made = make();
      const created = { agent: made, holders: 0 };
      entry = created;
      this.#agents.set(name, created);
      made.catch(() => {
        if (this.#agents.get(name) === created) this.#agents.delete(name);
      });
    }
    entry.holders++;
    return entry.agent;
  }

  release(name: string): void {
    const entry = this.#agents.get(name);
    if (!entry || --entry.holders > 0) return;
    this.#agents.delete(name);
    void entry.agent.then((agent) => agent.destroy(), () => undefined);
  }
}

/** The run's agents (AdapterContext.runScope); without a run scope, a registry of this client's own. */
export function sharedAgentsOf(runScope: Map<string, unknown> | undefined): SharedAgents {
  if (!runScope) return new SharedAgents();
  let agents = runScope.get('scim.http-agents');
  if (!(agents instanceof SharedAgents)) {
    agents = new SharedAgents();
    runScope.set('scim.http-agents', agents);
  }
  return agents as SharedAgents;
}
