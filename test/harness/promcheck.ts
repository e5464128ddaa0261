// The strict Prometheus text parser for tests: test/harness/promcheck (Go, prometheus/common
// expfmt: the parser node_exporter's textfile collector runs), built once into the test cache
// like OpenBao. `checkExposition(file)` returns its families, or throws with its parse error.

import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SOURCE = fileURLToPath(new URL('./promcheck/', import.meta.url));

export interface ParsedFamily {
  type: string;
  help: string;
  samples: { labels: Record<string, string>; value: number }[];
}

function binary(): string {
  const hash = createHash('sha256');
  for (const file of ['main.go', 'go.mod', 'go.sum']) hash.update(readFileSync(path.join(SOURCE, file)));
  const dir = path.join(process.env.PROVKEY_TEST_CACHE ?? path.join(homedir(), '.cache', 'provkey-test'), 'promcheck');
  const bin = path.join(dir, `promcheck-${hash.digest('hex').slice(0, 12)}`);
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  // Built to a unique name, then renamed: parallel workers may both build, neither sees half a file.
  const temp = `${bin}.${process.pid}.tmp`;
  execFileSync('go', ['build', '-o', temp, '.'], { cwd: SOURCE, env: { ...process.env, GOFLAGS: '-mod=mod', GOWORK: 'off', GOTOOLCHAIN: process.env.GOTOOLCHAIN ?? 'local' }, stdio: ['ignore', 'ignore', 'pipe'] });
  renameSync(temp, bin);
  return bin;
}

export function checkExposition(file: string): Record<string, ParsedFamily> {
  const run = spawnSync(binary(), [file], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`promcheck (prometheus/common expfmt) rejected ${file}: ${run.stderr.trim()}`);
  return JSON.parse(run.stdout) as Record<string, ParsedFamily>;
}
