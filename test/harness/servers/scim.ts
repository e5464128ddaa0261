// Test harness: start the SCIMMY-based SCIM test server (test/harness/scim/server.ts)
// as a child process and hand back its URLs plus helpers to manage accepted tokens.
//
//   const scim = await startScimServer({ tokens: ["tok-1"], adminToken: "adm", propagationMs: 500 });
//   await fetch(`${scim.url}/Users`, { headers: { authorization: "Bearer tok-1" } });
//   await scim.stop();
//
// The child runs under process.execPath (tests run on Node 24, which strips the
// TypeScript types). Only SHA-256 digests of tokens are written to disk.

import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { formatDigestList, readDigestFile, sha256Hex, writeFileAtomic } from "../scim/digest-file.ts";

export { sha256Hex } from "../scim/digest-file.ts";

export const SCIM_SERVER_SCRIPT = fileURLToPath(new URL("../scim/server.ts", import.meta.url));
export const SCIM_TOKEN_HOOK_SCRIPT = fileURLToPath(new URL("../scim/token-hook.ts", import.meta.url));
/** A hook that installs tokens through the app's admin API (so an app that is down shows in its exit code). */
export const SCIM_ADMIN_TOKEN_HOOK_SCRIPT = fileURLToPath(new URL("../scim/admin-token-hook.ts", import.meta.url));

export type StartScimServerOptions = {
  /** Initial plaintext tokens; written to the tokens file as SHA-256 digests. */
  tokens?: string[];
  /** Enables POST /admin/tokens with this admin bearer token (only its digest is written). */
  adminToken?: string;
  /** Delay (ms) before an added/removed token takes effect. Default 0. */
  propagationMs?: number;
  /** Make /ServiceProviderConfig answer 404. */
  noServiceProviderConfig?: boolean;
  /** Directory for the tokens/admin files; default: a fresh temp dir removed on stop(). */
  dir?: string;
  /** Port to listen on; default 0 (random). */
  port?: number;
  /** How often (ms) the server re-checks the tokens file / accept command. Default 50 here (server default 200). */
  reloadMs?: number;
  /** Shell command whose stdout lines are accepted digests (server --accept-command). */
  acceptCommand?: string;
  /** Pass --log to the server (request log on its stderr, see ScimServer.stderr()). */
  log?: boolean;
  /** Ready-line timeout in ms. Default 15000. */
  startTimeoutMs?: number;
};

export type ScimServer = {
  /** SCIM base URL, e.g. http://127.0.0.1:PORT/scim/v2 */
  url: string;
  /** http://127.0.0.1:PORT/admin/tokens (answers 404 unless adminToken was given) */
  adminUrl: string;
  port: number;
  /** Path of the digest file the server watches (and token-hook.ts edits). */
  tokensFile: string;
  /** argv for the exec-applier hook against this server's tokens file. */
  hookCommand: string[];
  /** Replace the accepted tokens (plaintext in, digests written atomically). Obeys propagationMs. */
  setTokens(tokens: string[]): Promise<void>;
  /** Digests the server accepts right now (after propagation), sorted. */
  acceptedDigests(): Promise<string[]>;
  /** Digests currently in the tokens file, sorted. */
  fileDigests(): Promise<string[]>;
  /** Server state: accepted/desired digests and pending (not yet propagated) changes. */
  state(): Promise<{
    accepted: string[];
    desired: string[];
    pending: { op: "add" | "remove"; digest: string; seenAt: number; effectiveAt: number }[];
    propagationMs: number;
  }>;
  /** Everything the server wrote to stderr so far. */
  stderr(): string;
  /** The child process (pid, etc.). */
  child: ChildProcess;
  stop(): Promise<void>;
};

// Live children → temp dir to remove on parent exit (undefined when the caller owns the dir).
const live = new Map<ChildProcess, string | undefined>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const [child, ownedDir] of live) {
      try { child.kill("SIGKILL"); } catch { /* already gone */ }
      if (ownedDir !== undefined) {
        try { rmSync(ownedDir, { recursive: true, force: true }); } catch { /* best effort */ }
      }
    }
  });
}

function tail(text: string, lines = 20): string {
  return text.split("\n").slice(-lines).join("\n").trim();
}

export async function startScimServer(opts: StartScimServerOptions = {}): Promise<ScimServer> {
  const ownDir = opts.dir === undefined;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), "provkey-scim-"));
  const tokensFile = join(dir, "scim-tokens.sha256");
  writeFileAtomic(tokensFile, formatDigestList((opts.tokens ?? []).map(sha256Hex), "SHA-256 digests of accepted SCIM bearer tokens"));

  const args = [
    SCIM_SERVER_SCRIPT,
    "--port", String(opts.port ?? 0),
    "--tokens-file", tokensFile,
    "--reload-ms", String(opts.reloadMs ?? 50),
    "--propagation-ms", String(opts.propagationMs ?? 0),
    "--expose-state",
    "--exit-on-stdin-close",
  ];
  if (opts.adminToken !== undefined) {
    const adminFile = join(dir, "scim-admin-token.sha256");
    writeFileAtomic(adminFile, formatDigestList([sha256Hex(opts.adminToken)], "SHA-256 digest of the admin bearer token"));
    args.push("--admin-token-file", adminFile);
  }
  if (opts.noServiceProviderConfig) args.push("--no-spc");
  if (opts.acceptCommand !== undefined) args.push("--accept-command", opts.acceptCommand);
  if (opts.log) args.push("--log");

  // Node 22.12–22.17 need the flag; Node >= 22.18 / 23.6 strip types by default.
  const features = process.features as { typescript?: string | false };
  const nodeFlags = features.typescript ? [] : ["--experimental-strip-types"];
  // stdin stays an open pipe: the server exits when it closes (parent died).
  const child = spawn(process.execPath, [...nodeFlags, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  live.set(child, ownDir ? dir : undefined);
  installExitHook();

  let stderr = "";
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (chunk: string) => {
    stderr += chunk;
    if (stderr.length > 1_000_000) stderr = stderr.slice(-500_000);
  });

  const cleanupDir = (): void => {
    if (ownDir) rmSync(dir, { recursive: true, force: true });
  };

  let ready: { url: string; port: number };
  try {
    ready = await new Promise<{ url: string; port: number }>((resolve, reject) => {
      const timeoutMs = opts.startTimeoutMs ?? 15000;
      let stdout = "";
      const timer = setTimeout(() => {
        reject(new Error(`SCIM test server did not become ready within ${timeoutMs}ms; stderr tail:\n${tail(stderr)}`));
      }, timeoutMs);
      const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
        clearTimeout(timer);
        reject(new Error(`SCIM test server exited before ready (code ${String(code)}, signal ${String(signal)}); stderr tail:\n${tail(stderr)}`));
      };
      child.once("exit", onExit);
      child.once("error", (err) => {
        clearTimeout(timer);
        reject(new Error(`cannot spawn SCIM test server: ${err.message}`));
      });
      child.stdout!.setEncoding("utf8");
      child.stdout!.on("data", (chunk: string) => {
        stdout += chunk;
        const nl = stdout.indexOf("\n");
        if (nl < 0) return;
        const line = stdout.slice(0, nl);
        clearTimeout(timer);
        child.off("exit", onExit);
        try {
          const msg = JSON.parse(line) as { ready?: boolean; url?: string; port?: number };
          if (msg.ready === true && typeof msg.url === "string" && typeof msg.port === "number") {
            resolve({ url: msg.url, port: msg.port });
            return;
          }
        } catch { /* fall through */ }
        reject(new Error(`unexpected first line from SCIM test server: ${line.slice(0, 200)}; stderr tail:\n${tail(stderr)}`));
      });
    });
  } catch (err) {
    live.delete(child);
    child.kill("SIGKILL");
    cleanupDir();
    throw err;
  }
  child.stdout!.resume();
  // Do not keep the test process alive just for this child; the exit hook and
  // the stdin pipe make sure it goes away with us.
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) {
    (stream as unknown as { unref?: () => void } | null)?.unref?.();
  }

  const origin = new URL(ready.url).origin;
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });

  async function state(): Promise<Awaited<ReturnType<ScimServer["state"]>>> {
    const res = await fetch(`${origin}/admin/state`);
    if (!res.ok) throw new Error(`GET /admin/state → ${res.status}`);
    return (await res.json()) as Awaited<ReturnType<ScimServer["state"]>>;
  }

  let stopped: Promise<void> | undefined;

  return {
    url: ready.url,
    adminUrl: `${origin}/admin/tokens`,
    port: ready.port,
    tokensFile,
    hookCommand: [process.execPath, SCIM_TOKEN_HOOK_SCRIPT, "--tokens-file", tokensFile],
    child,
    async setTokens(tokens: string[]): Promise<void> {
      writeFileAtomic(tokensFile, formatDigestList(tokens.map(sha256Hex), "SHA-256 digests of accepted SCIM bearer tokens"));
    },
    async acceptedDigests(): Promise<string[]> {
      return (await state()).accepted;
    },
    async fileDigests(): Promise<string[]> {
      return [...readDigestFile(tokensFile).digests].sort();
    },
    state,
    stderr(): string {
      return stderr;
    },
    stop(): Promise<void> {
      stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill("SIGTERM");
          const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
          await exited;
          clearTimeout(timer);
        }
        live.delete(child);
        cleanupDir();
      })();
      return stopped;
    },
  };
}
