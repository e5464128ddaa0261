// One test's world for the observe tests (scan, metrics, webhooks): provkey.yaml, the default
// file store under .provkey/, a SCIM key on the real SCIMMY server, and a CLI whose output
// (plus the audit log, store file and anything else recorded) is scanned for every secret.

import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { describeRun, ProvkeyCli, readStoredVersions, type RunOptions, type RunResult } from '../harness/cli.ts';
import type { ScimServer } from '../harness/servers/scim.ts';

export const ADMIN_TOKEN = `scim-admin-${randomBytes(18).toString('base64url')}`;

export class ObserveWorkspace {
  readonly dir = mkdtempSync(join(tmpdir(), 'provkey-observe-'));
  readonly config = join(this.dir, 'provkey.yaml');
  readonly storeFile = join(this.dir, '.provkey', 'store.enc');
  readonly auditFile = join(this.dir, '.provkey', 'audit.jsonl');
  readonly cli: ProvkeyCli;
  private readonly keys = new Set<string>();

  constructor(readonly server: ScimServer, env: Record<string, string> = {}) {
    this.cli = new ProvkeyCli({ cwd: this.dir, config: this.config, env: { SCIM_ADMIN_TOKEN: ADMIN_TOKEN, ...env } });
    this.cli.scanner.addSecret(ADMIN_TOKEN, 'SCIM admin token');
  }

  /** SCIM keys with an http applier on the test server, plus any extra top-level YAML. */
  writeConfig(keys: Record<string, { interval?: string; grace?: string; prefix?: string }>, extraYaml = ''): this {
    const lines = ['keys:'];
    for (const [name, k] of Object.entries(keys)) {
      this.keys.add(name);
      lines.push(
        `  ${name}:`,
        ...(k.prefix ? [`    format: { type: token, prefix: ${k.prefix} }`] : []),
        `    rotation: { interval: ${k.interval ?? '30d'}, grace: ${k.grace ?? '1h'} }`,
        '    target:',
        '      type: scim',
        `      url: ${JSON.stringify(this.server.url)}`,
        '      propagationTimeout: 5s',
        '      requestTimeout: 5s',
        `      applier: { type: http, url: ${JSON.stringify(this.server.adminUrl)}, authRef: "env:SCIM_ADMIN_TOKEN" }`,
      );
    }
    writeFileSync(this.config, `${lines.join('\n')}\n${extraYaml}`);
    return this;
  }

  run(args: string[], opts: RunOptions = {}): Promise<RunResult> {
    return this.cli.run(args, opts);
  }

  async ok(args: string[], opts: RunOptions = {}): Promise<RunResult> {
    const result = await this.run(args, opts);
    expect(result.code, describeRun(result)).toBe(0);
    return result;
  }

  json<T>(args: string[], opts: RunOptions = {}) {
    return this.cli.json<T>(args, opts);
  }

  reveal(key: string, label?: string): Promise<string> {
    return this.cli.reveal(key, label);
  }

  /** Every value still in the store joins the secrets; audit log and store file join the outputs. Then the dir goes. */
  async scanAndRemove(): Promise<void> {
    if (existsSync(this.storeFile)) {
      for (const key of this.keys) {
        for (const v of await readStoredVersions(this.dir, key)) if (v.value !== null) this.cli.scanner.addSecret(v.value, `${key} v${v.id} (${v.label}, from the store)`);
      }
    }
    for (const [where, file] of [['audit log', this.auditFile], ['store file', this.storeFile]] as const) {
      if (existsSync(file)) this.cli.scanner.record(where, readFileSync(file, 'utf8'));
    }
    try {
      this.cli.scanner.assertClean();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}
