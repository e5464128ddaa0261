import { readFileSync } from 'node:fs';
import type { Io } from '../io.js';
import { printJson } from '../render/format.js';

/** What `provkey version` reports: the release, the commit it was built from and how it ships. */
export interface BuildInfo {
  version: string;
  commit: string;
  /** "npm": dist/ run by a system Node; "sea": the single executable with its own Node. */
  kind: 'npm' | 'sea' | 'checkout';
  builtAt: string | null;
}

// The single-executable bundle defines this at build time (bin/build/sea.mjs): it has no
// files beside it to read.
declare const PROVKEY_EMBEDDED_BUILD: BuildInfo | undefined;

let cached: BuildInfo | undefined;

/** Read once, synchronously (a few hundred bytes): `--version` needs it before any command runs. */
export function buildInfo(): BuildInfo {
  if (cached) return cached;
  if (typeof PROVKEY_EMBEDDED_BUILD !== 'undefined') return (cached = PROVKEY_EMBEDDED_BUILD);
  try {
    // dist/build.json is written by `npm run build` (bin/build/build-info.mjs).
    cached = JSON.parse(readFileSync(new URL('../../build.json', import.meta.url), 'utf8')) as BuildInfo;
  } catch {
    // A tree built by bare tsc: the package's own version, no build stamp.
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    cached = { version: pkg.version, commit: 'unknown', kind: 'checkout', builtAt: null };
  }
  return cached;
}

export function versionCommand(io: Io): number {
  const info = buildInfo();
  const runtime = { node: process.versions.node, v8: process.versions.v8, platform: `${process.platform}-${process.arch}`, executable: process.execPath };
  if (io.json) {
    printJson(io.out, { ...info, ...runtime });
    return 0;
  }
  io.out(`provkey ${info.version} (${info.commit}, ${info.kind === 'sea' ? 'single executable' : info.kind === 'npm' ? 'npm package' : 'checkout'}${info.builtAt ? `, built ${info.builtAt}` : ''})`);
  io.out(`node ${runtime.node} (v8 ${runtime.v8}) on ${runtime.platform}: ${runtime.executable}`);
  return 0;
}
