import type { Verdict } from '../target.js';
import type { HttpReply } from './http-client.js';
import { oneLine } from './redact.js';

/** Reading what a SCIM server answered: the token verdict, error details, ListResponse shape. */

export const LIST_RESPONSE_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
export const PATCH_OP_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
export const USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const SERVICE_PROVIDER_CONFIG_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig';

/**
 * What a reply says about the bearer token that was sent. Only a 401/403 is a refusal of the
 * token. A 5xx, or a 429 still there after Retry-After, is the app not working now: it says
 * nothing about the token, so it is "unreachable" (resumed later), never "rejected".
 */
export function tokenVerdict(reply: HttpReply): Verdict {
  if (reply.kind === 'unreachable') return 'unreachable';
  if (reply.kind === 'failed') return 'error';
  if (reply.status === 401 || reply.status === 403) return 'rejected';
  if (reply.status >= 200 && reply.status < 300) return 'accepted';
  if (isServiceUnavailable(reply)) return 'unreachable';
  return 'error';
}

/** 429 Too Many Requests or any 5xx: the app cannot answer for the token right now. */
export function isServiceUnavailable(reply: HttpReply): boolean {
  return reply.kind === 'response' && (reply.status === 429 || (reply.status >= 500 && reply.status < 600));
}

export function isRejection(reply: HttpReply): boolean {
  return reply.kind === 'response' && (reply.status === 401 || reply.status === 403);
}

/**
 * One line for a probe detail: "HTTP 500: <SCIM detail>" or "unreachable: ECONNREFUSED …".
 * Only the status and the body's error text; never headers.
 */
export function describeReply(reply: HttpReply): string {
  if (reply.kind === 'unreachable') return `unreachable: ${oneLine(reply.message)}${reply.tls ? ` (${reply.code}; set tls.caFile to the CA that issued the app's certificate)` : ''}`;
  if (reply.kind === 'failed') return `${reply.code}: ${oneLine(reply.message)}`;
  const detail = scimErrorDetail(reply.body, reply.text);
  const waited = reply.gaveUpWaitingMs === undefined ? '' : ` (Retry-After ${Math.ceil(reply.gaveUpWaitingMs / 1000)}s is past provkey's bound; try later)`;
  return `HTTP ${reply.status}${detail ? `: ${detail}` : ''}${waited}`;
}

/**
 * The human part of an error body: SCIM's `detail` (RFC 7644 §3.12) and `scimType`, else the
 * common non-SCIM shapes ({message}, {error, error_description}), else the start of the text.
 */
export function scimErrorDetail(body: unknown, text: string): string | undefined {
  if (isObject(body)) {
    const scimType = typeof body.scimType === 'string' && body.scimType ? ` (scimType ${body.scimType})` : '';
    for (const field of ['detail', 'message', 'error_description', 'error'] as const) {
      const value = body[field];
      if (typeof value === 'string' && value.trim()) return oneLine(value) + scimType;
    }
    return scimType ? oneLine(scimType.trim()) : undefined;
  }
  return text.trim() ? oneLine(text) : undefined;
}

/**
 * Why `body` is not a usable ListResponse (RFC 7644 §3.4.2), or undefined when it is.
 * `empty`: Entra's test queries a random externalId and needs totalResults 0.
 */
export function listResponseProblem(body: unknown, options: { empty: boolean }): string | undefined {
  if (!isObject(body)) return 'answer is not a JSON object';
  const schemas = body.schemas;
  if (!Array.isArray(schemas) || !schemas.includes(LIST_RESPONSE_SCHEMA)) {
    return `schemas does not contain ${LIST_RESPONSE_SCHEMA}`;
  }
  const total = body.totalResults;
  if (typeof total !== 'number' || !Number.isInteger(total) || total < 0) {
    return 'totalResults is missing or not a non-negative integer';
  }
  const resources = body.Resources;
  if (resources !== undefined && !Array.isArray(resources)) return 'Resources is not an array';
  const count = resources?.length ?? 0;
  if (options.empty && (total !== 0 || count !== 0)) {
    return `a filter on a random externalId matched ${Math.max(total, count)} resource(s); expected none`;
  }
  if (!options.empty && total > 0 && count === 0) return `totalResults is ${total} but Resources is empty`;
  return undefined;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
