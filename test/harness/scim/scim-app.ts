// SCIMMY wiring for the SCIM test server: in-memory Users and Groups behind
// SCIMMY's built-in User/Group resource types (ingress/egress/degress handlers),
// plus ServiceProviderConfig / ResourceTypes / Schemas, and a small dispatcher
// that maps an HTTP request (method, path segments, query, body) onto SCIMMY.
//
// SCIMMY keeps declarations in process-wide singletons, so setupScim() must be
// called once per process (server.ts is always its own process).
//
// Erasable TypeScript only: runnable by Node 24 type stripping.

import { randomUUID } from "node:crypto";
import SCIMMY from "scimmy";

export const SCIM_ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error";
export const MAX_RESULTS = 200;

type Rec = Record<string, any>;

export type ScimResult = {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
};

export type ScimRequest = {
  method: string;
  segments: string[]; // path below the base path, already percent-decoded
  query: URLSearchParams;
  body: unknown; // parsed JSON, or undefined when there was no body
};

/** Plain SCIM error body; used where SCIMMY's ErrorResponse rejects the status (e.g. 405). */
export function scimErrorBody(status: number, detail: string, scimType?: string): Rec {
  return {
    schemas: [SCIM_ERROR_SCHEMA],
    status: String(status),
    ...(scimType ? { scimType } : {}),
    detail,
  };
}

function scimError(status: number, scimType: string | undefined, message: string): Error {
  return new SCIMMY.Types.Error(status, scimType as string, message);
}

function errorResult(ex: unknown): ScimResult {
  if (ex instanceof SCIMMY.Types.Error) {
    const status = Number(ex.status) || 500;
    let body: Rec;
    try {
      body = JSON.parse(JSON.stringify(new SCIMMY.Messages.ErrorResponse(ex as any)));
    } catch {
      body = scimErrorBody(status, ex.message, ex.scimType || undefined);
    }
    return { status, body };
  }
  if (ex instanceof TypeError) {
    return { status: 400, body: scimErrorBody(400, ex.message, "invalidValue") };
  }
  const message = ex instanceof Error ? ex.message : String(ex);
  return { status: 500, body: scimErrorBody(500, `Internal error: ${message}`) };
}

// ---------------------------------------------------------------------------
// Case-insensitive filtering.
// SCIMMY's Filter.match compares strings case-sensitively, but RFC 7643 makes
// userName, emails.value, displayName etc. caseExact=false. We lowercase both
// the records (projected copies) and the filter's comparison values on those
// paths, then map matches back to the original records.

const COMPARATORS = new Set(["eq", "ne", "co", "sw", "ew", "gt", "lt", "ge", "le", "pr", "np"]);

function lowerExpressionValue(expr: unknown[]): unknown[] {
  if (expr.length > 0 && Array.isArray(expr[0])) return expr.map((e) => lowerExpressionValue(e as unknown[]));
  const out = [...expr];
  const ci = out.findIndex((v) => typeof v === "string" && COMPARATORS.has(v.toLowerCase()));
  const vi = ci + 1;
  if (ci >= 0 && vi < out.length && typeof out[vi] === "string") out[vi] = (out[vi] as string).toLowerCase();
  return out;
}

function lowerFilterObject(obj: Rec, ciPaths: Set<string>, prefix: string): Rec {
  const out: Rec = {};
  for (const [key, value] of Object.entries(obj)) {
    const path = prefix ? `${prefix}.${key.toLowerCase()}` : key.toLowerCase();
    if (Array.isArray(value)) out[key] = ciPaths.has(path) ? lowerExpressionValue(value) : value;
    else if (value !== null && typeof value === "object") out[key] = lowerFilterObject(value, ciPaths, path);
    else out[key] = value;
  }
  return out;
}

function lowerRecordPath(value: unknown, parts: string[]): unknown {
  if (Array.isArray(value)) return value.map((v) => lowerRecordPath(v, parts));
  if (parts.length === 0) return typeof value === "string" ? value.toLowerCase() : value;
  if (value === null || typeof value !== "object") return value;
  const [head, ...rest] = parts;
  const out: Rec = { ...(value as Rec) };
  for (const key of Object.keys(out)) {
    if (key.toLowerCase() === head) out[key] = lowerRecordPath(out[key], rest);
  }
  return out;
}

function ciMatch(filter: InstanceType<typeof SCIMMY.Types.Filter>, records: Rec[], ciPaths: string[]): Rec[] {
  const paths = new Set(ciPaths.map((p) => p.toLowerCase()));
  const expression = Array.from(filter as unknown as Rec[]).map((e) => lowerFilterObject(e, paths, ""));
  const projected = records.map((r) => {
    let p: unknown = r;
    for (const path of paths) p = lowerRecordPath(p, path.split("."));
    return p as Rec;
  });
  const matched = new Set(new SCIMMY.Types.Filter(expression).match(projected));
  return records.filter((_, i) => matched.has(projected[i]));
}

// ---------------------------------------------------------------------------
// In-memory storage

const users = new Map<string, Rec>();
const groups = new Map<string, Rec>();

const USER_CI_PATHS = ["userName", "displayName", "emails.value", "name.formatted", "name.givenName", "name.familyName"];
const GROUP_CI_PATHS = ["displayName"];

function plain(instance: unknown): Rec {
  const data = JSON.parse(JSON.stringify(instance)) as Rec;
  delete data.schemas;
  delete data.meta;
  delete data.id;
  return data;
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

function nowIso(): string {
  return new Date().toISOString();
}

function userWithGroups(rec: Rec): Rec {
  const out = clone(rec);
  const memberOf = [...groups.values()].filter((g) =>
    Array.isArray(g.members) && g.members.some((m: Rec) => m?.value === rec.id),
  );
  if (memberOf.length > 0) {
    out.groups = memberOf.map((g) => ({ value: g.id, display: g.displayName, type: "direct" }));
  }
  return out;
}

function assertUniqueUserName(userName: unknown, exceptId?: string): void {
  if (typeof userName !== "string") return;
  const wanted = userName.toLowerCase();
  for (const u of users.values()) {
    if (u.id !== exceptId && typeof u.userName === "string" && u.userName.toLowerCase() === wanted) {
      throw scimError(409, "uniqueness", `userName '${userName}' is already in use`);
    }
  }
}

function assertUniqueGroupName(displayName: unknown, exceptId?: string): void {
  if (typeof displayName !== "string") return;
  const wanted = displayName.toLowerCase();
  for (const g of groups.values()) {
    if (g.id !== exceptId && typeof g.displayName === "string" && g.displayName.toLowerCase() === wanted) {
      throw scimError(409, "uniqueness", `displayName '${displayName}' is already in use`);
    }
  }
}

function store(map: Map<string, Rec>, kind: string, id: string | undefined, data: Rec): Rec {
  const now = nowIso();
  if (id !== undefined) {
    const existing = map.get(id);
    if (!existing) throw scimError(404, undefined, `${kind} ${id} not found`);
    const rec = { ...data, id, meta: { created: existing.meta.created, lastModified: now } };
    map.set(id, rec);
    return rec;
  }
  const newId = randomUUID();
  const rec = { ...data, id: newId, meta: { created: now, lastModified: now } };
  map.set(newId, rec);
  return rec;
}

export function resetData(): void {
  users.clear();
  groups.clear();
}

export function dataCounts(): { users: number; groups: number } {
  return { users: users.size, groups: groups.size };
}

// ---------------------------------------------------------------------------
// SCIMMY declarations

let configured = false;

export function setupScim(basepath: string): void {
  if (!configured) {
    configured = true;
    SCIMMY.Config.set({
      documentationUri: "https://datatracker.ietf.org/doc/html/rfc7644",
      patch: true,
      filter: MAX_RESULTS,
      sort: true,
      bulk: false,
      changePassword: false,
      etag: false,
      authenticationSchemes: [
        {
          type: "oauthbearertoken",
          name: "OAuth Bearer Token",
          description: "Authentication scheme using the OAuth Bearer Token Standard (static SCIM bearer token)",
          specUri: "https://www.rfc-editor.org/info/rfc6750",
          primary: true,
        },
      ],
    });

    // Entra ID sends enterprise attributes (employeeNumber, department, manager…)
    // by default, so expose the EnterpriseUser extension as optional.
    SCIMMY.Resources.declare(SCIMMY.Resources.User.extend(SCIMMY.Schemas.EnterpriseUser, false))
      .ingress((resource: any, instance: any) => {
        const data = plain(instance);
        delete data.groups; // readOnly, derived from Group membership
        assertUniqueUserName(data.userName, resource.id);
        return userWithGroups(store(users, "User", resource.id, data)) as any;
      })
      .egress((resource: any) => {
        if (resource.id) {
          const rec = users.get(resource.id);
          if (!rec) throw scimError(404, undefined, `Resource ${resource.id} not found`);
          return userWithGroups(rec) as any;
        }
        const all = [...users.values()].map(userWithGroups);
        return (resource.filter ? ciMatch(resource.filter, all, USER_CI_PATHS) : all) as any;
      })
      .degress((resource: any) => {
        if (!users.delete(resource.id)) throw scimError(404, undefined, `Resource ${resource.id} not found`);
        for (const g of groups.values()) {
          if (Array.isArray(g.members)) g.members = g.members.filter((m: Rec) => m?.value !== resource.id);
        }
      });

    SCIMMY.Resources.declare(SCIMMY.Resources.Group)
      .ingress((resource: any, instance: any) => {
        const data = plain(instance);
        assertUniqueGroupName(data.displayName, resource.id);
        if (Array.isArray(data.members)) {
          for (const m of data.members as Rec[]) {
            const id = m?.value;
            if (typeof id !== "string" || (!users.has(id) && !groups.has(id))) {
              throw scimError(400, "invalidValue", `Group member '${String(id)}' does not exist`);
            }
            if (m.type === undefined) m.type = users.has(id) ? "User" : "Group";
            if (m.display === undefined) {
              const target = users.get(id) ?? groups.get(id);
              const display = target?.displayName ?? target?.userName;
              if (typeof display === "string") m.display = display;
            }
          }
        }
        return clone(store(groups, "Group", resource.id, data)) as any;
      })
      .egress((resource: any) => {
        if (resource.id) {
          const rec = groups.get(resource.id);
          if (!rec) throw scimError(404, undefined, `Resource ${resource.id} not found`);
          return clone(rec) as any;
        }
        const all = [...groups.values()].map(clone);
        return (resource.filter ? ciMatch(resource.filter, all, GROUP_CI_PATHS) : all) as any;
      })
      .degress((resource: any) => {
        if (!groups.delete(resource.id)) throw scimError(404, undefined, `Resource ${resource.id} not found`);
        for (const g of groups.values()) {
          if (Array.isArray(g.members)) g.members = g.members.filter((m: Rec) => m?.value !== resource.id);
        }
      });
  }

  for (const R of [
    SCIMMY.Resources.User,
    SCIMMY.Resources.Group,
    SCIMMY.Resources.Schema,
    SCIMMY.Resources.ResourceType,
    SCIMMY.Resources.ServiceProviderConfig,
  ]) {
    R.basepath(basepath);
  }
}

// ---------------------------------------------------------------------------
// Dispatcher

const RESOURCE_ENDPOINTS: Record<string, typeof SCIMMY.Resources.User | typeof SCIMMY.Resources.Group> = {
  Users: SCIMMY.Resources.User,
  Groups: SCIMMY.Resources.Group,
};

function parseIntParam(query: URLSearchParams, name: string): number | undefined {
  const raw = query.get(name);
  if (raw === null || raw.trim() === "") return undefined;
  if (!/^-?\d+$/.test(raw.trim())) throw scimError(400, "invalidValue", `Query parameter '${name}' must be an integer`);
  return Number.parseInt(raw.trim(), 10);
}

function listParams(query: URLSearchParams): Rec {
  const params: Rec = {};
  for (const key of ["filter", "attributes", "excludedAttributes", "sortBy", "sortOrder"]) {
    const v = query.get(key);
    if (v !== null) params[key] = v;
  }
  // RFC 7644 §3.4.2.4: startIndex < 1 → 1, count < 0 → 0; we cap count at MAX_RESULTS
  // and default it to MAX_RESULTS (SCIMMY's own default would be 20).
  const startIndex = parseIntParam(query, "startIndex");
  const count = parseIntParam(query, "count");
  params.startIndex = Math.max(1, startIndex ?? 1);
  params.count = Math.min(MAX_RESULTS, Math.max(0, count ?? MAX_RESULTS));
  return params;
}

function itemParams(query: URLSearchParams): Rec {
  const params: Rec = {};
  for (const key of ["attributes", "excludedAttributes"]) {
    const v = query.get(key);
    if (v !== null) params[key] = v;
  }
  return params;
}

/**
 * SCIMMY's ListResponse pages a full result set itself, but (1.3.5) returns the
 * first page when startIndex > totalResults and reports itemsPerPage = count
 * rather than the number of resources on the page. Normalise both.
 */
function fixListResponse(list: Rec): Rec {
  const out = JSON.parse(JSON.stringify(list)) as Rec;
  if (!Array.isArray(out.Resources)) out.Resources = [];
  if (typeof out.startIndex === "number" && typeof out.totalResults === "number" && out.startIndex > out.totalResults) {
    out.Resources = [];
  }
  out.itemsPerPage = out.Resources.length;
  return out;
}

function methodNotAllowed(allowed: string[]): ScimResult {
  return {
    status: 405,
    headers: { allow: allowed.join(", ") },
    body: scimErrorBody(405, `Method not allowed; allowed: ${allowed.join(", ")}`),
  };
}

function notFound(detail = "Endpoint not found"): ScimResult {
  return { status: 404, body: scimErrorBody(404, detail) };
}

/**
 * Entra ID sends booleans as "True"/"False" strings in PATCH operations for
 * `active`; SCIMMY rejects those (400 invalidValue). Coerce that one case.
 */
function normaliseEntraPatch(body: unknown): unknown {
  if (body === null || typeof body !== "object" || !Array.isArray((body as Rec).Operations)) return body;
  const toBool = (v: unknown): unknown =>
    typeof v === "string" && /^(true|false)$/i.test(v) ? v.toLowerCase() === "true" : v;
  const ops = ((body as Rec).Operations as unknown[]).map((op) => {
    if (op === null || typeof op !== "object") return op;
    const o = { ...(op as Rec) };
    if (typeof o.path === "string" && o.path.toLowerCase() === "active") o.value = toBool(o.value);
    else if (o.path === undefined && o.value !== null && typeof o.value === "object" && !Array.isArray(o.value)) {
      const v = { ...(o.value as Rec) };
      for (const k of Object.keys(v)) if (k.toLowerCase() === "active") v[k] = toBool(v[k]);
      o.value = v;
    }
    return o;
  });
  return { ...(body as Rec), Operations: ops };
}

export type DispatchOptions = { noServiceProviderConfig?: boolean };

export async function dispatch(req: ScimRequest, opts: DispatchOptions = {}): Promise<ScimResult> {
  try {
    return await route(req, opts);
  } catch (ex) {
    return errorResult(ex);
  }
}

async function route(req: ScimRequest, opts: DispatchOptions): Promise<ScimResult> {
  const { method, segments, query } = req;
  const [first, second, ...rest] = segments;
  if (first === undefined || rest.length > 0) return notFound();

  if (first === "ServiceProviderConfig") {
    if (opts.noServiceProviderConfig) return notFound("ServiceProviderConfig is not available on this server");
    if (second !== undefined) return notFound();
    if (method !== "GET") return methodNotAllowed(["GET"]);
    return { status: 200, body: await new SCIMMY.Resources.ServiceProviderConfig().read() };
  }

  if (first === "ResourceTypes" || first === "Schemas") {
    if (method !== "GET") return methodNotAllowed(["GET"]);
    const R = first === "ResourceTypes" ? SCIMMY.Resources.ResourceType : SCIMMY.Resources.Schema;
    if (second === undefined) {
      const list = await new R().read();
      return { status: 200, body: fixListResponse(list as Rec) };
    }
    return { status: 200, body: await new R(second).read() };
  }

  const R = RESOURCE_ENDPOINTS[first];
  if (R === undefined) return notFound();

  if (second === undefined) {
    if (method === "GET") {
      const list = await new R(listParams(query) as any).read();
      return { status: 200, body: fixListResponse(list as Rec) };
    }
    if (method === "POST") {
      const created = (await new R(itemParams(query) as any).write(req.body)) as Rec;
      const location = created?.meta?.location;
      return { status: 201, body: created, headers: typeof location === "string" ? { location } : {} };
    }
    return methodNotAllowed(["GET", "POST"]);
  }

  if (second === ".search") {
    if (method !== "POST") return methodNotAllowed(["POST"]);
    const body = (req.body ?? {}) as Rec;
    const search = new SCIMMY.Messages.SearchRequest(body as any);
    const list = await search.apply([R as any]);
    return { status: 200, body: fixListResponse(list as Rec) };
  }

  const id = second;
  switch (method) {
    case "GET":
      return { status: 200, body: await new R(id, itemParams(query) as any).read() };
    case "PUT":
      return { status: 200, body: await new R(id, itemParams(query) as any).write(req.body) };
    case "PATCH": {
      const patched = await new R(id, itemParams(query) as any).patch(normaliseEntraPatch(req.body) as any);
      // SCIMMY returns undefined when the patch changed nothing; answer 200 with
      // the current resource anyway (RFC 7644 §3.5.2 allows 200 or 204).
      const body = patched ?? (await new R(id, itemParams(query) as any).read());
      return { status: 200, body };
    }
    case "DELETE":
      await new R(id).dispose();
      return { status: 204 };
    default:
      return methodNotAllowed(["GET", "PUT", "PATCH", "DELETE"]);
  }
}
