import type { OktaConsumerConfig } from '../config/schema.js';
import type { AdapterContext } from '../stores/context.js';
import type { SecretInUse } from '../targets/target.js';
import type { Consumer, ConsumerAnswer } from './consumer.js';
import { describeOutage, consumerJsonClient, type Answered } from './http.js';
import { serverText } from './text.js';

/**
 * Okta's Application Connections API, for the apps whose provisioning connection takes a token
 * (Org2Org and similar; custom SCIM apps in Okta are portal-only today, see docs/consumers.md):
 *   switch: POST /api/v1/apps/{appId}/connections/default?activate=true with authScheme TOKEN;
 *           activating makes Okta test the connection with the token, so a refused token is a 400;
 *   prove/check: GET …/connections/default answers status ENABLED.
 * Okta has no test-without-saving call: `validate` cannot prove anything before the switch,
 * and says so; the switch's own activation is the proof, and a failed one is rolled back.
 */
export function createOktaConsumer(options: { name: string; field: string; targetUrl: string; config: OktaConsumerConfig; context: AdapterContext }): Consumer {
  const { config, context, field } = options;
  const org = config.orgUrl.replace(/\/+$/, '');
  const app = encodeURIComponent(config.appId);
  const http = consumerJsonClient(config, context.configDir, field);
  let apiToken: Promise<string> | undefined;

  const call = async (method: 'GET' | 'POST', path: string, what: string, body?: unknown): Promise<{ reply: Answered } | ConsumerAnswer> => {
    apiToken ??= context.resolveSecret(config.apiTokenRef, `${field}.apiTokenRef`);
    const reply = await http.send({ method, url: new URL(`${org}${path}`), authorization: `SSWS ${await apiToken}`, ...(body === undefined ? {} : { body }) });
    if (reply.kind === 'unreachable') return { ok: false, reason: 'unreachable', detail: `${what}: Okta ${describeOutage(reply)}` };
    if (reply.status === 401 || reply.status === 403) return { ok: false, reason: 'denied', detail: `${what}: Okta answered ${reply.status} ${oktaError(reply)}; the API token needs okta.apps.manage (an app administrator)` };
    if (reply.status === 429 || reply.status >= 500) return { ok: false, reason: 'unreachable', detail: `${what}: Okta ${describeOutage(reply)}` };
    if (reply.status === 404) return { ok: false, reason: 'error', detail: `${what}: Okta answered 404 ${oktaError(reply)}; check ${field}.appId` };
    return { reply };
  };

  const enabled = async (): Promise<ConsumerAnswer> => {
    const answer = await call('GET', `/api/v1/apps/${app}/connections/default`, 'read connection');
    if (!('reply' in answer)) return answer;
    if (answer.reply.status !== 200) return { ok: false, reason: 'error', detail: `read connection: Okta answered ${answer.reply.status} ${oktaError(answer.reply)}` };
    const status = (answer.reply.body as { status?: string } | undefined)?.status;
    return status === 'ENABLED' ? { ok: true, detail: 'the connection is ENABLED' } : { ok: false, reason: 'rejected', detail: `the connection is ${serverText(String(status ?? 'in no known state'), 40)}` };
  };

  return {
    type: 'okta',
    name: options.name,
    validate: async () => ({ ok: true, detail: 'Okta tests a token only when it is saved and activated (the switch)' }),
    async switch(secret: SecretInUse) {
      const body = { authScheme: 'TOKEN', baseUrl: config.baseUrl ?? options.targetUrl, token: secret.value };
      const answer = await call('POST', `/api/v1/apps/${app}/connections/default?activate=true`, 'save connection', body);
      if (!('reply' in answer)) return answer;
      const { reply } = answer;
      if (reply.status === 200 || reply.status === 201) return { ok: true, detail: `the connection now sends ${secret.fingerprint}` };
      return { ok: false, reason: reply.status === 400 ? 'rejected' : 'error', detail: `save connection: Okta answered ${reply.status} ${oktaError(reply)}` };
    },
    prove: enabled,
    check: enabled,
    async close() {
      http.close();
    },
  };
}

/** Okta's error shape: {"errorCode","errorSummary","errorCauses"}. */
function oktaError(reply: Answered): string {
  const body = reply.body as { errorCode?: string; errorSummary?: string } | undefined;
  if (!body?.errorCode) return '';
  return `(${serverText(body.errorCode, 40)}${body.errorSummary ? `: ${serverText(body.errorSummary, 160)}` : ''})`;
}
