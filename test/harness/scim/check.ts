// Standalone smoke check for the SCIM test server + harness + token hook.
//
//   /work/main/node_modules/.bin/node test/harness/scim/check.ts
//
// Exits 0 when every check passes, 1 otherwise (prints one line per check).

import { spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { sha256Hex, startScimServer } from "../servers/scim.ts";
import type { ScimServer } from "../servers/scim.ts";

const PROPAGATION_MS = 500;
const SCIM_JSON = "application/scim+json";
const ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error";
const LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

let failures = 0;
function check(name: string, ok: boolean, extra = ""): void {
  if (!ok) failures++;
  process.stdout.write(`${ok ? "ok  " : "FAIL"} ${name}${extra ? ` — ${extra}` : ""}\n`);
}

function newToken(label: string): string {
  return `${label}-${randomBytes(24).toString("base64url")}`;
}

type Resp = { status: number; headers: Headers; body: any };

async function call(method: string, url: string, token: string | undefined, body?: unknown): Promise<Resp> {
  const headers: Record<string, string> = { accept: SCIM_JSON };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = SCIM_JSON;
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let parsed: any = undefined;
  if (text !== "") {
    try { parsed = JSON.parse(text); } catch { parsed = text; }
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

async function admin(srv: ScimServer, adminToken: string, body: unknown): Promise<Resp> {
  const res = await fetch(srv.adminUrl, {
    method: "POST",
    headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text === "" ? undefined : JSON.parse(text) };
}

/** Poll until `token` gets `want` (200 or 401) on GET /Users; returns elapsed ms or -1 on timeout. */
async function waitForStatus(srv: ScimServer, token: string, want: number, since: number, timeoutMs = 4000): Promise<number> {
  for (;;) {
    const r = await call("GET", `${srv.url}/Users?count=1`, token);
    if (r.status === want) return Date.now() - since;
    if (Date.now() - since > timeoutMs) return -1;
    await new Promise((res) => setTimeout(res, 20));
  }
}

function runHook(srv: ScimServer, action: string | undefined, stdin: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = srv.hookCommand;
    const env = { ...process.env };
    if (action === undefined) delete env.PROVKEY_ACTION;
    else env.PROVKEY_ACTION = action;
    const child = spawn(cmd!, args, { env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr += c));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

const initialToken = newToken("initial");
const adminToken = newToken("admin");
const allTokens: string[] = [initialToken, adminToken];

const srv = await startScimServer({ tokens: [initialToken], adminToken, propagationMs: PROPAGATION_MS, log: true });
process.stdout.write(`server: ${srv.url} (tokens file ${srv.tokensFile})\n`);
const U = `${srv.url}/Users`;

try {
  // --- Entra ID probe -------------------------------------------------------
  const probeId = randomUUID();
  let r = await call("GET", `${U}?filter=${encodeURIComponent(`externalId eq "${probeId}"`)}`, initialToken);
  check(
    "Entra probe GET /Users?filter=externalId eq \"<uuid>\" → 200 empty ListResponse",
    r.status === 200 && r.body?.schemas?.[0] === LIST_SCHEMA && r.body?.totalResults === 0 && Array.isArray(r.body?.Resources),
    `status ${r.status} totalResults ${r.body?.totalResults}`,
  );
  check("content-type is application/scim+json", (r.headers.get("content-type") ?? "").startsWith(SCIM_JSON), r.headers.get("content-type") ?? "");

  // --- Okta probe ---------------------------------------------------------------
  r = await call("GET", `${U}?startIndex=1&count=2`, initialToken);
  check("Okta probe GET /Users?startIndex=1&count=2 → 200", r.status === 200 && r.body?.startIndex === 1, `status ${r.status}`);

  // --- discovery --------------------------------------------------------------
  r = await call("GET", `${srv.url}/ServiceProviderConfig`, initialToken);
  check(
    "GET /ServiceProviderConfig → 200 (patch+filter supported, oauthbearertoken)",
    r.status === 200 && r.body?.patch?.supported === true && r.body?.filter?.supported === true &&
      r.body?.authenticationSchemes?.[0]?.type === "oauthbearertoken",
    `status ${r.status}`,
  );
  r = await call("GET", `${srv.url}/ResourceTypes`, initialToken);
  check("GET /ResourceTypes → 200 with User and Group", r.status === 200 && r.body?.totalResults === 2, `status ${r.status}`);
  r = await call("GET", `${srv.url}/Schemas`, initialToken);
  check("GET /Schemas → 200", r.status === 200 && r.body?.totalResults >= 2, `status ${r.status}`);

  // --- auth failures ----------------------------------------------------------
  r = await call("GET", U, newToken("wrong"));
  check(
    "wrong token → 401 SCIM error + WWW-Authenticate: Bearer",
    r.status === 401 && r.body?.schemas?.[0] === ERROR_SCHEMA && r.body?.status === "401" && typeof r.body?.detail === "string" &&
      /^Bearer\b/.test(r.headers.get("www-authenticate") ?? ""),
    `status ${r.status} www-authenticate ${r.headers.get("www-authenticate")}`,
  );
  r = await call("GET", U, undefined);
  check("missing token → 401", r.status === 401 && /^Bearer\b/.test(r.headers.get("www-authenticate") ?? ""), `status ${r.status}`);
  r = await call("GET", `${srv.url}/ServiceProviderConfig`, undefined);
  check("discovery endpoints also require the token → 401", r.status === 401, `status ${r.status}`);
  r = await call("GET", U, adminToken);
  check("admin token is not a SCIM token → 401", r.status === 401, `status ${r.status}`);

  // --- user lifecycle ---------------------------------------------------------
  const externalId = randomUUID();
  r = await call("POST", U, initialToken, {
    schemas: ["urn:ietf:params:scim:schemas:core:2.0:User"],
    userName: "Alice.Example@contoso.test",
    externalId,
    active: true,
    name: { givenName: "Alice", familyName: "Example" },
    emails: [{ value: "alice@contoso.test", type: "work", primary: true }],
  });
  const userId: string | undefined = r.body?.id;
  check(
    "POST /Users → 201 with id + Location",
    r.status === 201 && typeof userId === "string" && r.headers.get("location") === `${U}/${userId}`,
    `status ${r.status} location ${r.headers.get("location")}`,
  );
  r = await call("POST", U, initialToken, { userName: "alice.example@CONTOSO.test" });
  check("duplicate userName (case-insensitive) → 409 uniqueness", r.status === 409 && r.body?.scimType === "uniqueness", `status ${r.status}`);

  r = await call("GET", `${U}?filter=${encodeURIComponent(`externalId eq "${externalId}"`)}`, initialToken);
  check("filter externalId eq finds the user", r.status === 200 && r.body?.totalResults === 1 && r.body?.Resources?.[0]?.id === userId);
  r = await call("GET", `${U}?filter=${encodeURIComponent('userName eq "ALICE.EXAMPLE@contoso.test"')}`, initialToken);
  check("filter userName eq is case-insensitive", r.status === 200 && r.body?.totalResults === 1);

  r = await call("PATCH", `${U}/${userId}`, initialToken, {
    schemas: ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    Operations: [
      { op: "Replace", path: "active", value: "False" }, // Entra-style
      { op: "replace", path: 'emails[type eq "work"].value', value: "alice2@contoso.test" },
      { op: "add", path: "displayName", value: "Alice E." },
    ],
  });
  check(
    "PATCH /Users/{id} → 200 with patched resource",
    r.status === 200 && r.body?.active === false && r.body?.emails?.[0]?.value === "alice2@contoso.test" && r.body?.displayName === "Alice E.",
    `status ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`,
  );
  r = await call("PUT", `${U}/${userId}`, initialToken, { userName: "Alice.Example@contoso.test", externalId, active: true });
  check("PUT /Users/{id} → 200 (replace)", r.status === 200 && r.body?.active === true && r.body?.displayName === undefined, `status ${r.status}`);
  r = await call("GET", `${U}/${userId}`, initialToken);
  check("GET /Users/{id} → 200", r.status === 200 && r.body?.id === userId, `status ${r.status}`);

  for (const name of ["bob", "carol", "dave"]) await call("POST", U, initialToken, { userName: name });
  r = await call("GET", `${U}?startIndex=3&count=2`, initialToken);
  check(
    "pagination startIndex=3&count=2 over 4 users → 2 items, totalResults 4",
    r.status === 200 && r.body?.totalResults === 4 && r.body?.Resources?.length === 2 && r.body?.itemsPerPage === 2 && r.body?.startIndex === 3,
    JSON.stringify({ t: r.body?.totalResults, n: r.body?.Resources?.length, ipp: r.body?.itemsPerPage }),
  );

  r = await call("DELETE", `${U}/${userId}`, initialToken);
  check("DELETE /Users/{id} → 204", r.status === 204 && r.body === undefined, `status ${r.status}`);
  r = await call("GET", `${U}/${userId}`, initialToken);
  check("GET deleted user → 404 SCIM error", r.status === 404 && r.body?.schemas?.[0] === ERROR_SCHEMA, `status ${r.status}`);

  // --- admin API + propagation ------------------------------------------------
  let a = await admin(srv, newToken("not-admin"), { action: "add", token: newToken("x") });
  check("admin API with wrong admin token → 401", a.status === 401, `status ${a.status}`);
  a = await admin(srv, adminToken, { action: "frobnicate", token: "abc" });
  check("admin API with bad body → 400", a.status === 400, `status ${a.status}`);
  a = await admin(srv, adminToken, { action: "replace", token: "abc" });
  check("admin replace without 'replaces' → 400", a.status === 400, `status ${a.status}`);
  const health = await fetch(srv.adminUrl.replace(/tokens$/, "health"));
  check("GET /admin/health → 200 {ok:true}", health.status === 200 && ((await health.json()) as { ok?: unknown }).ok === true);

  const httpToken = newToken("http-applied");
  allTokens.push(httpToken);
  const addedAt = Date.now();
  a = await admin(srv, adminToken, { action: "add", token: httpToken });
  check("admin add → 204", a.status === 204, `status ${a.status}`);
  r = await call("GET", U, httpToken);
  check("new token rejected immediately after add (propagation pending)", r.status === 401, `status ${r.status}`);
  const addLatency = await waitForStatus(srv, httpToken, 200, addedAt);
  check(
    `new token accepted only after ~${PROPAGATION_MS}ms`,
    addLatency >= PROPAGATION_MS - 50 && addLatency < PROPAGATION_MS + 1000,
    `accepted after ${addLatency}ms`,
  );
  const accepted = await srv.acceptedDigests();
  check("acceptedDigests() includes the new digest", accepted.includes(sha256Hex(httpToken)) && accepted.includes(sha256Hex(initialToken)));

  const removedAt = Date.now();
  a = await admin(srv, adminToken, { action: "replace", token: newToken("unused"), replaces: httpToken });
  check("admin replace → 204", a.status === 204, `status ${a.status}`);
  r = await call("GET", U, httpToken);
  check("replaced token still accepted right after replace", r.status === 200, `status ${r.status}`);
  const removeLatency = await waitForStatus(srv, httpToken, 401, removedAt);
  check(`replaced token rejected after ~${PROPAGATION_MS}ms`, removeLatency >= PROPAGATION_MS - 50 && removeLatency < PROPAGATION_MS + 1000, `rejected after ${removeLatency}ms`);

  // --- exec hook ---------------------------------------------------------------
  const hookToken = newToken("hook-applied");
  allTokens.push(hookToken);
  const hookAt = Date.now();
  let h = await runHook(srv, "apply", `${hookToken}\n`);
  check("hook apply exits 0 silently", h.code === 0 && h.stdout === "" && h.stderr === "", `code ${h.code} ${h.stderr.trim()}`);
  const fileText = readFileSync(srv.tokensFile, "utf8");
  check("tokens file holds the digest, never the plaintext", fileText.includes(sha256Hex(hookToken)) && !allTokens.some((t) => fileText.includes(t)));
  const hookLatency = await waitForStatus(srv, hookToken, 200, hookAt);
  check("hook-applied token accepted after propagation", hookLatency >= PROPAGATION_MS - 50 && hookLatency < PROPAGATION_MS + 1500, `accepted after ${hookLatency}ms`);

  const revokeAt = Date.now();
  h = await runHook(srv, "revoke", hookToken);
  check("hook revoke exits 0", h.code === 0, `code ${h.code} ${h.stderr.trim()}`);
  const revokeLatency = await waitForStatus(srv, hookToken, 401, revokeAt);
  check("hook-revoked token rejected after propagation", revokeLatency >= PROPAGATION_MS - 50, `rejected after ${revokeLatency}ms`);

  h = await runHook(srv, "bogus", hookToken);
  check(
    "hook with bad PROVKEY_ACTION → non-zero, one-line error, no token echo",
    h.code !== 0 && h.stderr.trim().split("\n").length === 1 && !h.stderr.includes(hookToken),
    `code ${h.code}: ${h.stderr.trim()}`,
  );
  h = await runHook(srv, "apply", "");
  check("hook with empty stdin → non-zero", h.code !== 0, `code ${h.code}: ${h.stderr.trim()}`);

  // --- setTokens (harness) ------------------------------------------------------
  const setToken = newToken("set");
  allTokens.push(setToken);
  const setAt = Date.now();
  await srv.setTokens([initialToken, setToken]);
  const setLatency = await waitForStatus(srv, setToken, 200, setAt);
  check("setTokens() token accepted after propagation", setLatency >= PROPAGATION_MS - 50, `accepted after ${setLatency}ms`);
  check("fileDigests() reflects setTokens()", (await srv.fileDigests()).join() === [sha256Hex(initialToken), sha256Hex(setToken)].sort().join());

  // --- logs never contain plaintext -------------------------------------------
  const logs = srv.stderr();
  check("server log has request lines", /GET \/scim\/v2\/Users 200 token=[0-9a-f]{8}/.test(logs));
  check("server log contains no plaintext token", !allTokens.some((t) => logs.includes(t)));
} finally {
  await srv.stop();
}

// --- a server without /ServiceProviderConfig --------------------------------
{
  const tok = newToken("nospc");
  const s2 = await startScimServer({ tokens: [tok], noServiceProviderConfig: true });
  try {
    const r = await call("GET", `${s2.url}/ServiceProviderConfig`, tok);
    check("--no-spc: GET /ServiceProviderConfig → 404", r.status === 404, `status ${r.status}`);
    const a = await fetch(s2.adminUrl, { method: "POST", headers: { authorization: `Bearer ${tok}` }, body: "{}" });
    check("no adminToken: POST /admin/tokens → 404", a.status === 404, `status ${a.status}`);
    const pid = s2.child.pid;
    await s2.stop();
    let alive = true;
    try { process.kill(pid!, 0); } catch { alive = false; }
    check("stop() terminates the child", !alive);
  } finally {
    await s2.stop();
  }
}

process.stdout.write(failures === 0 ? "\nALL CHECKS PASSED\n" : `\n${failures} CHECK(S) FAILED\n`);
process.exit(failures === 0 ? 0 : 1);
