// `npm run build:sea`: the single executable (Node's "single executable applications"):
// 1. esbuild bundles src/cli/main.ts and its dependencies into one CommonJS file
//    (bin/build/bundle.mjs, shared with the npm package's ES module bundle). Each
//    `await import('./commands/x.js')` becomes a lazily initialised module inside the bundle,
//    so a command still evaluates only the code it uses (no LDAP or Vault code for --help).
// 2. Node 24 (the project's `node` dev dependency) turns it into a preparation blob.
// 3. postject injects the blob into a copy of that same Node 24 binary: dist/sea/provkey.
// It lives in bin/build/ because it is a build tool, not provkey code; `files` leaves it out
// of the npm package, and dist/sea/ is removed by `npm pack`'s prepack clean.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleCommonJs } from './bundle.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const nodeBinary = path.join(root, 'node_modules/node/bin/node');
const SENTINEL_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

/** Bundles the CLI into `outfile` (bin/build/bundle.mjs); `trace` for tests only. */
export const bundle = bundleCommonJs;

/** Builds the executable into `outDir` (default dist/sea/); `trace` as for bundle(), for tests. */
export async function buildSea({ outDir = path.join(root, 'dist/sea'), trace = false } = {}) {
  mkdirSync(outDir, { recursive: true });
  const main = path.join(outDir, 'provkey.cjs');
  const blob = path.join(outDir, 'provkey.blob');
  const executable = path.join(outDir, 'provkey');
  await bundle({ outfile: main, trace });
  const config = path.join(outDir, 'sea-config.json');
  // useCodeCache: V8's compiled code ships in the blob, so start-up skips most parsing.
  writeFileSync(config, JSON.stringify({ main, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true, useSnapshot: false }));
  execFileSync(nodeBinary, ['--experimental-sea-config', config], { stdio: ['ignore', 'ignore', 'inherit'] });
  copyFileSync(nodeBinary, executable);
  chmodSync(executable, 0o755);
  const postject = path.join(root, 'node_modules/postject/dist/cli.js');
  execFileSync(nodeBinary, [postject, executable, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SENTINEL_FUSE], { stdio: ['ignore', 'ignore', 'inherit'] });
  return executable;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const executable = await buildSea();
  process.stdout.write(`${path.relative(process.cwd(), executable)}\n`);
}
