import type { ScimTargetConfig } from '../../config/schema.js';
import { parseDuration } from '../../core/duration.js';
import { ConfigError } from '../../core/errors.js';
import type { AdapterContext } from '../../stores/context.js';
import type { CandidateVerdict, ConnectionTest, Identification, Probe, SecretInUse, Target, TargetCapabilities, TestOptions, Verdict } from '../target.js';
import type { TokenApplier } from './appliers/applier.js';
import { assertHookTrusted, createExecApplier } from './appliers/exec.js';
import { createHttpApplier } from './appliers/http.js';
import { createStoreApplier } from './appliers/store.js';
import { parseEndpointUrl } from './endpoint-url.js';
import { createHttpClient, type HttpClient } from './http-client.js';
import {
  probeEntraUserQuery,
  probeOktaUserPage,
  probeServiceProviderConfig,
  probeWriteUser,
  probeWrongTokenRejected,
  skipped,
} from './probes.js';
import { scrubSecrets } from './redact.js';
import { RetryAfterBudget } from './retry-after.js';
import { scimEndpoint, type ScimEndpoint } from './scim-endpoint.js';
import { serverFactsOf, type ScimServerFacts } from './server-facts.js';

/**
 * The SCIM 2.0 target (RFC 7644). Creation checks the config and does no I/O; the CA file
 * and the applier's admin token are read on first use.
 */
export async function createScimTarget(keyName: string, config: ScimTargetConfig, context: AdapterContext): Promise<Target> {
  const field = `keys.${keyName}.target`;
  const baseUrl = parseEndpointUrl(config.url, `${field}.url`, config.allowInsecureHttp);
  const requestTimeoutMs = parseDuration(config.requestTimeout, `${field}.requestTimeout`);
  const capabilities: TargetCapabilities = {
    overlap: true,
    negativeProbe: 'free',
    propagationTimeoutMs: parseDuration(config.propagationTimeout, `${field}.propagationTimeout`),
  };
  // The target's tls settings apply to the token endpoint too: it is normally the same app.
  const http = createHttpClient(config.tls, context, `${field}.tls.caFile`);
  const applier = createApplier(keyName, config, context, http);
  // An exec hook others can write is refused at open (exit 2), before any change is made.
  if (config.applier.type === 'exec') await assertHookTrusted({ keyName, command: config.applier.command, cwd: context.configDir, env: context.env });
  const endpoint = (budget: RetryAfterBudget) => scimEndpoint(baseUrl, http, requestTimeoutMs, budget);
  // The same URL behind other TLS settings may be another server (or another trust decision).
  const server = JSON.stringify([baseUrl.href, config.tls ?? {}, config.allowInsecureHttp ?? false]);
  return new ScimTarget(endpoint, applier, http, capabilities, config.writeProbe, { facts: serverFactsOf(context.runScope), server });
}

function createApplier(keyName: string, config: ScimTargetConfig, context: AdapterContext, http: HttpClient): TokenApplier {
  const field = `keys.${keyName}.target.applier`;
  const applier = config.applier;
  switch (applier.type) {
    case 'store':
      return createStoreApplier();
    case 'http':
      return createHttpApplier({
        url: parseEndpointUrl(applier.url, `${field}.url`, config.allowInsecureHttp),
        timeoutMs: parseDuration(applier.timeout, `${field}.timeout`),
        http,
        adminToken: () => context.resolveSecret(applier.authRef, `${field}.authRef`),
      });
    case 'exec':
      return createExecApplier({
        keyName,
        command: applier.command,
        timeoutMs: parseDuration(applier.timeout, `${field}.timeout`),
        cwd: context.configDir,
        env: context.env,
        passEnv: checkPassEnv(applier.passEnv, `${field}.passEnv`),
      });
  }
}

/**
 * passEnv names variables of provkey's environment the hook may see. PROVKEY_* are provkey's
 * own (the exec variables are set by the applier, a file-store passphrase may be one of them).
 */
function checkPassEnv(names: readonly string[], field: string): string[] {
  names.forEach((name, index) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new ConfigError(`${field}.${index}: "${name}" is not an environment variable name`);
    if (name.toUpperCase().startsWith('PROVKEY_')) {
      throw new ConfigError(`${field}.${index}: ${name}: PROVKEY_* variables are provkey's own and are never passed to a hook`);
    }
  });
  return [...names];
}

class ScimTarget implements Target {
  readonly type = 'scim' as const;

  readonly capabilities: TargetCapabilities;
  readonly #endpoint: (budget: RetryAfterBudget) => ScimEndpoint;
  readonly #applier: TokenApplier;
  readonly #http: HttpClient;
  readonly #alwaysWriteProbe: boolean;
  readonly #shared: { facts: ScimServerFacts; server: string };

  constructor(
    endpoint: (budget: RetryAfterBudget) => ScimEndpoint,
    applier: TokenApplier,
    http: HttpClient,
    capabilities: TargetCapabilities,
    alwaysWriteProbe: boolean,
    shared: { facts: ScimServerFacts; server: string },
  ) {
    this.#endpoint = endpoint;
    this.#applier = applier;
    this.#http = http;
    this.capabilities = capabilities;
    this.#alwaysWriteProbe = alwaysWriteProbe;
    this.#shared = shared;
  }

  async test(secret: SecretInUse, options: TestOptions): Promise<ConnectionTest> {
    const at = new Date().toISOString();
    const started = performance.now();
    // One Retry-After budget for the whole test: a rate-limited app costs one bounded wait.
    const scim = this.#endpoint(new RetryAfterBudget());
    const { probes, verdict } =
      options.expect === 'reject'
        ? await this.#runRejectProbes(scim, secret)
        : await this.#runAcceptProbes(scim, secret, options.write === true || this.#alwaysWriteProbe, options.effect);
    const required = probes.every((probe) => probe.outcome !== 'fail');
    const ok = verdict === (options.expect === 'accept' ? 'accepted' : 'rejected') && required;
    return {
      expect: options.expect,
      verdict,
      ok,
      // Belt and braces: the HTTP client already cut the secret out of every answer.
      probes: probes.map((probe) => (probe.detail ? { ...probe, detail: scrubSecrets(probe.detail, [secret]) } : probe)),
      at,
      ms: Math.round(performance.now() - started),
    };
  }

  /** Proving a rejection needs only the request Entra sends; every request costs nothing. */
  async #runRejectProbes(scim: ScimEndpoint, secret: SecretInUse): Promise<{ probes: Probe[]; verdict: Verdict }> {
    const { probe, verdict } = await probeEntraUserQuery(scim, secret.value, 'reject');
    return { probes: [probe], verdict };
  }

  async #runAcceptProbes(scim: ScimEndpoint, secret: SecretInUse, write: boolean, effect: TestOptions['effect']): Promise<{ probes: Probe[]; verdict: Verdict }> {
    const entra = await probeEntraUserQuery(scim, secret.value, 'accept');
    const probes = [entra.probe];
    const later = ['okta-user-page', 'service-provider-config', 'wrong-token-rejected', ...(write ? ['write-cleanup', 'write-create-user'] : [])];
    if (entra.verdict !== 'accepted') {
      // Not accepted on the first request (rejected, unreachable, error): the others would only repeat it.
      probes.push(...later.map((name) => skipped(name, `not run: entra-user-query was ${entra.verdict}`)));
      return { probes, verdict: entra.verdict };
    }
    // The key's own proof is the Entra query above. What follows describes the server (does it
    // page users, serve its config, check tokens at all), so a batch asks it once per server.
    const { facts, server } = this.#shared;
    probes.push(await facts.probe(server, 'okta-user-page', () => probeOktaUserPage(scim, secret.value)));
    probes.push(await facts.probe(server, 'service-provider-config', () => probeServiceProviderConfig(scim, secret.value)));
    probes.push(await facts.probe(server, 'wrong-token-rejected', () => probeWrongTokenRejected(scim)));
    if (write) probes.push(...(await probeWriteUser(scim, secret.value, effect)));
    return { probes, verdict: entra.verdict };
  }

  /**
   * A wrong token costs nothing at a SCIM app, so every candidate is simply asked (Entra's
   * query, once each). An app that cannot answer gives "unreachable", never "rejected"; an
   * answer that says nothing about the token (404, 400) is "unknown".
   */
  async identify(candidates: SecretInUse[]): Promise<Identification> {
    const verdicts: Record<string, CandidateVerdict> = {};
    const notes: string[] = [];
    for (const candidate of candidates) {
      if (candidate.fingerprint in verdicts) continue;
      const { probe, verdict } = await probeEntraUserQuery(this.#endpoint(new RetryAfterBudget()), candidate.value, 'accept');
      verdicts[candidate.fingerprint] = verdict === 'error' ? 'unknown' : verdict;
      notes.push(`${candidate.fingerprint}: ${verdict}${probe.status === undefined ? '' : ` (${probe.status})`}`);
    }
    return { verdicts, detail: scrubSecrets(`entra-user-query with each version: ${notes.join(', ')}`, candidates) };
  }

  set(change: Parameters<Target['set']>[0]) {
    return this.#applier.set(change);
  }

  retire(change: Parameters<Target['retire']>[0]) {
    return this.#applier.retire(change);
  }

  rollback(change: Parameters<Target['rollback']>[0]) {
    return this.#applier.rollback(change);
  }

  async close(): Promise<void> {
    this.#http.close();
  }
}
