import type { TokenCredential } from '@azure/identity';
import { createAzureCredential } from '../azure-credential/credential.js';
import type { EntraConsumerConfig } from '../config/schema.js';
import { parseDuration } from '../core/duration.js';
import type { AdapterContext } from '../stores/context.js';
import type { SecretInUse } from '../targets/target.js';
import type { Consumer, ConsumerAnswer } from './consumer.js';
import { describeOutage, consumerJsonClient, type Answered, type Reply } from './http.js';
import { serverText } from './text.js';

/**
 * A Microsoft Entra enterprise application's provisioning job, through Microsoft Graph
 * (docs/entra.md). Entra keeps one token per job, so the job itself has no overlap:
 *   validate: POST …/jobs/{jobId}/validateCredentials with the new BaseAddress + SecretToken and
 *             useSavedCredentials false; Entra runs its test connection against the app (204 = pass);
 *   switch:   PUT …/synchronization/secrets with the pair;
 *   prove:    (restart when configured,) validateCredentials with the saved credentials, and the
 *             job is not in quarantine. Graph masks secrets on read: proof never comes from reading back;
 *   check:    the same, plus failed credential validations in the provisioning logs.
 * 401/403 name the permission; 429/503 are retried after Retry-After, within a bound.
 */

/** The least privilege for an app that owns the enterprise application; the broader one otherwise. */
export const GRAPH_PERMISSION = 'Application.ReadWrite.OwnedBy (as an owner of the enterprise application) or Synchronization.ReadWrite.All';

export interface EntraConsumerOptions {
  keyName: string;
  name: string;
  field: string;
  /** The key's SCIM target URL: the BaseAddress when the config gives none. */
  targetUrl: string;
  config: EntraConsumerConfig;
  context: AdapterContext;
}

export function createEntraConsumer(options: EntraConsumerOptions): Consumer {
  const { config, context, field } = options;
  const graph = config.graphUrl.replace(/\/+$/, '');
  const graphOrigin = new URL(graph).origin;
  const baseAddress = config.baseAddress ?? options.targetUrl;
  const http = consumerJsonClient(config, context.configDir, field);
  const sp = encodeURIComponent(config.servicePrincipalId);
  const job = encodeURIComponent(config.jobId);
  const jobUrl = `${graph}/servicePrincipals/${sp}/synchronization/jobs/${job}`;
  let credential: Promise<TokenCredential> | undefined;

  const openCredential = async (): Promise<TokenCredential> => {
    const identity = await import('@azure/identity');
    const ca = config.tls.caFile === undefined ? undefined : await readCa(config.tls.caFile, context.configDir);
    return createAzureCredential(identity, config.auth, `${field}.auth`, (ref, at) => context.resolveSecret(ref, at), {
      ...(config.authorityHost === undefined ? {} : { authorityHost: config.authorityHost }),
      ...(config.disableInstanceDiscovery ? { disableInstanceDiscovery: true } : {}),
      ...(ca === undefined ? {} : { tlsOptions: { ca } }),
      retryOptions: { maxRetries: config.retries, maxRetryDelayInMs: parseDuration(config.maxRetryDelay, `${field}.maxRetryDelay`) },
    });
  };

  /** A Graph access token, or the answer that says why there is none. */
  const accessToken = async (): Promise<string | ConsumerAnswer> => {
    credential ??= openCredential();
    try {
      const token = await (await credential).getToken(`${graphOrigin}/.default`);
      if (!token) return { ok: false, reason: 'denied', detail: 'no Graph access token was issued' };
      return token.token;
    } catch (error) {
      const e = error as { name?: string; statusCode?: number; message?: string };
      const text = serverText(e.message ?? '');
      // MSAL reports a token endpoint's refusal (e.g. AADSTS500011, unknown resource) as
      // AuthenticationRequiredError without a status: a refusal, never "unreachable".
      if (e.name === 'AuthenticationRequiredError') {
        return { ok: false, reason: 'denied', detail: `no Graph token for auth method "${config.auth.method}": the identity provider refused to issue a token for ${graphOrigin} (check the tenant, client and that the app may call Graph)` };
      }
      if (e.name === 'AuthenticationError' && (e.statusCode ?? 400) < 500) {
        const aadsts = /AADSTS\d+/.exec(e.message ?? '')?.[0];
        return { ok: false, reason: 'denied', detail: `no Graph token for auth method "${config.auth.method}"${aadsts ? ` (${aadsts})` : ''}: the identity provider refused the credential` };
      }
      if (e.name === 'CredentialUnavailableError') return { ok: false, reason: 'denied', detail: `no credential is available for auth method "${config.auth.method}" (see docs/entra.md)` };
      return { ok: false, reason: 'unreachable', detail: `no Graph token: the identity provider could not be reached (${text})` };
    }
  };

  const call = async (method: 'GET' | 'POST' | 'PUT', url: string, what: string, body?: unknown): Promise<{ reply: Answered } | ConsumerAnswer> => {
    const token = await accessToken();
    if (typeof token !== 'string') return token;
    const reply = await http.send({ method, url: new URL(url), authorization: `Bearer ${token}`, ...(body === undefined ? {} : { body }) });
    if (reply.kind === 'unreachable') return { ok: false, reason: 'unreachable', detail: `${what}: Graph ${describeOutage(reply)}` };
    if (reply.status === 401 || reply.status === 403) {
      return { ok: false, reason: 'denied', detail: `${what}: Graph answered ${reply.status} ${graphError(reply)}; the app needs ${GRAPH_PERMISSION}` };
    }
    if (reply.status === 429 || reply.status >= 500) return { ok: false, reason: 'unreachable', detail: `${what}: Graph ${describeOutage(reply)} ${graphError(reply)}`.trim() };
    if (reply.status === 404) return { ok: false, reason: 'error', detail: `${what}: Graph answered 404 ${graphError(reply)}; check ${field}.servicePrincipalId and jobId (docs/entra.md)` };
    return { reply };
  };

  const pair = (secret: SecretInUse) => [
    { key: 'BaseAddress', value: baseAddress },
    { key: 'SecretToken', value: secret.value },
  ];

  const validateWith = async (what: string, body: unknown): Promise<ConsumerAnswer> => {
    const answer = await call('POST', `${jobUrl}/validateCredentials`, what, body);
    if (!('reply' in answer)) return answer;
    const { reply } = answer;
    if (reply.status === 204 || reply.status === 200) return { ok: true, detail: `${what}: Entra's test connection passed` };
    return { ok: false, reason: reply.status === 400 ? 'rejected' : 'error', detail: `${what}: Graph answered ${reply.status} ${graphError(reply)}` };
  };

  const jobHealth = async (): Promise<ConsumerAnswer> => {
    const answer = await call('GET', jobUrl, 'read job');
    if (!('reply' in answer)) return answer;
    const { reply } = answer;
    if (reply.status !== 200) return { ok: false, reason: 'error', detail: `read job: Graph answered ${reply.status} ${graphError(reply)}` };
    const status = (reply.body as { status?: { code?: string; quarantine?: { reason?: string } | null } } | undefined)?.status;
    if (status?.code === 'Quarantine') return { ok: false, reason: 'rejected', detail: `the provisioning job is in quarantine (${serverText(status.quarantine?.reason ?? 'no reason given')})` };
    return { ok: true, detail: `job ${status?.code ?? 'status unknown'}` };
  };

  const failedValidations = async (): Promise<string> => {
    const since = new Date(Date.now() - parseDuration(config.auditWindow, `${field}.auditWindow`)).toISOString();
    const filter = `servicePrincipal/id eq '${config.servicePrincipalId.replace(/'/g, "''")}' and activityDateTime ge ${since}`;
    const answer = await call('GET', `${graph}/auditLogs/provisioning?$filter=${encodeURIComponent(filter)}`, 'read provisioning logs');
    if (!('reply' in answer)) return !answer.ok && answer.reason === 'denied' ? 'provisioning logs not readable (needs AuditLog.Read.All)' : `provisioning logs not read (${answer.ok ? '' : answer.detail})`;
    if (answer.reply.status !== 200) return `provisioning logs not read (HTTP ${answer.reply.status})`;
    const entries = ((answer.reply.body as { value?: unknown[] } | undefined)?.value ?? []) as Array<{ statusInfo?: { status?: string; errorInformation?: { errorCode?: string } } }>;
    const failed = entries.filter((e) => e.statusInfo?.status === 'failure');
    const codes = [...new Set(failed.map((e) => e.statusInfo?.errorInformation?.errorCode).filter(Boolean))].slice(0, 3);
    return failed.length === 0
      ? `no failed provisioning in the last ${config.auditWindow}`
      : `${failed.length} failed provisioning attempt(s) in the last ${config.auditWindow}${codes.length ? ` (${codes.map((c) => serverText(String(c), 100)).join(', ')})` : ''}`;
  };

  const provenNow = async (): Promise<ConsumerAnswer> => {
    const saved = await validateWith('validate saved credentials', { useSavedCredentials: true });
    if (!saved.ok) return saved;
    const health = await jobHealth();
    if (!health.ok) return health;
    return { ok: true, detail: `${saved.detail}; ${health.detail}` };
  };

  return {
    type: 'entra',
    name: options.name,
    validate: (next) => validateWith('validateCredentials', { useSavedCredentials: false, credentials: pair(next) }),
    async switch(secret) {
      const answer = await call('PUT', `${graph}/servicePrincipals/${sp}/synchronization/secrets`, 'save secrets', { value: pair(secret) });
      if (!('reply' in answer)) return answer;
      const { reply } = answer;
      if (reply.status === 204 || reply.status === 200) return { ok: true, detail: `the job now sends ${secret.fingerprint}` };
      return { ok: false, reason: reply.status === 400 ? 'rejected' : 'error', detail: `save secrets: Graph answered ${reply.status} ${graphError(reply)}` };
    },
    async prove() {
      if (config.restart) {
        const answer = await call('POST', `${jobUrl}/restart`, 'restart job', { criteria: { resetScope: 'QuarantineState' } });
        if (!('reply' in answer)) return answer;
        if (answer.reply.status !== 204 && answer.reply.status !== 200) return { ok: false, reason: 'error', detail: `restart job: Graph answered ${answer.reply.status} ${graphError(answer.reply)}` };
      }
      return provenNow();
    },
    async check() {
      const proven = await provenNow();
      const logs = await failedValidations();
      return proven.ok ? { ok: true, detail: `${proven.detail}; ${logs}` } : { ...proven, detail: `${proven.detail}; ${logs}` };
    },
    async close() {
      http.close();
    },
  };
}

/** Graph's error shape: {"error":{"code","message"}}; the code and a bounded, scrubbed message. */
function graphError(reply: Reply): string {
  if (reply.kind !== 'response') return '';
  const error = (reply.body as { error?: { code?: string; message?: string } } | undefined)?.error;
  if (!error) return '';
  return `(${serverText(error.code ?? 'no code', 80)}${error.message ? `: ${serverText(error.message, 160)}` : ''})`;
}

async function readCa(file: string, configDir: string): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  const path = await import('node:path');
  return readFile(path.resolve(configDir, file), 'utf8');
}
