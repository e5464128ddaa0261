// An "exec applier" hook that installs the token through the app's own admin API, as a real
// deployment script would (unlike token-hook.ts, which edits the tokens file directly): so an
// app that is down, slow or failing shows up in the hook's exit code.
//
//   printf '%s' "$TOKEN" | PROVKEY_ACTION=apply SCIM_ADMIN_TOKEN=… node test/harness/scim/admin-token-hook.ts \
//       --admin-url https://127.0.0.1:PORT/admin/tokens [--ca-file PATH]
//
//   PROVKEY_ACTION=apply → {"action":"add"}; revoke / rollback → {"action":"remove"}.
//
// Exit codes: 0 ok; 75 (EX_TEMPFAIL) the app could not be reached or answered 5xx/429;
// 1 the app refused (4xx); 2 usage. The token is never printed.
//
// Erasable TypeScript only: runnable by Node 24 type stripping.

import { readFileSync } from "node:fs";
import https from "node:https";
import http from "node:http";
import { parseArgs } from "node:util";

const EX_TEMPFAIL = 75;

function die(code: number, message: string): never {
  process.stderr.write(`admin-token-hook: ${message}\n`);
  process.exit(code);
}

const { values } = parseArgs({ options: { "admin-url": { type: "string" }, "ca-file": { type: "string" } } });
const adminUrl = values["admin-url"];
if (!adminUrl) die(2, "--admin-url is required");
const adminToken = process.env.SCIM_ADMIN_TOKEN;
if (!adminToken) die(2, "SCIM_ADMIN_TOKEN is not set");
const action = process.env.PROVKEY_ACTION;
if (action !== "apply" && action !== "revoke" && action !== "rollback") die(2, `PROVKEY_ACTION must be apply, revoke or rollback`);
const token = readFileSync(0, "utf8").replace(/\r?\n$/, "");
if (!token) die(2, "no token on stdin");

const body = JSON.stringify({ action: action === "apply" ? "add" : "remove", token });
const url = new URL(adminUrl);
const module = url.protocol === "https:" ? https : http;
const request = module.request(url, {
  method: "POST",
  headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json", "content-length": Buffer.byteLength(body) },
  ...(values["ca-file"] ? { ca: readFileSync(values["ca-file"]) } : {}),
});
request.on("error", (error: NodeJS.ErrnoException) => die(EX_TEMPFAIL, `cannot reach ${url.origin}: ${error.code ?? "error"}`));
request.on("response", (response) => {
  response.resume();
  const status = response.statusCode ?? 0;
  if (status >= 200 && status < 300) process.exit(0);
  if (status === 429 || status >= 500) die(EX_TEMPFAIL, `${url.origin} answered ${status}`);
  die(1, `${url.origin} refused: ${status}`);
});
request.end(body);
