// Writes dist/build.json: the version and commit `provkey version` reports. Run after tsc by
// `npm run build` (so `npm pack`'s prepack ships it); the single executable embeds the same data.
// Lives in bin/build/ because it is a build tool, not provkey code; `files` leaves it out.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';

const root = new URL('../../', import.meta.url);
export function buildInfo(kind) {
  const { version } = JSON.parse(readFileSync(new URL('package.json', root), 'utf8'));
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    // Not a git checkout (a copied tree): the version alone identifies the build.
  }
  return { version, commit, kind, builtAt: new Date().toISOString() };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  mkdirSync(new URL('dist/', root), { recursive: true });
  writeFileSync(new URL('dist/build.json', root), `${JSON.stringify(buildInfo('npm'), null, 2)}\n`);
}
