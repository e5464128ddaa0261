// The esbuild bundle of the CLI, shared by `npm run build` (dist/bundle/provkey.cjs, which
// bin/provkey starts, and dist/bundle/manifest.json) and the single executable
// (bin/build/sea.mjs). A bundle starts faster than 150 separate modules: one read and one
// compile instead of a resolve, read and compile per file. Every `await import('./commands/x.js')`
// stays lazy: it becomes a lazily initialised module, evaluated only when that command runs.
import { readFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { buildInfo } from './build-info.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
export const entryPoint = path.join(root, 'src/cli/main.ts');

/**
 * `trace` (tests only, never a shipped build) makes every bundled module report its evaluation
 * to the file named by $PROVKEY_TRACE_LOADS, so a test can prove the bundle still loads lazily.
 */
function tracePlugin() {
  return {
    name: 'trace-evaluation',
    setup(b) {
      b.onLoad({ filter: /\.(ts|js|mjs|cjs)$/ }, async (args) => {
        const source = await readFile(args.path, 'utf8');
        const relative = path.relative(root, args.path);
        const loader = args.path.endsWith('.ts') ? 'ts' : 'js';
        // After a shebang or 'use strict' would be nicer; a call first is valid in both module kinds.
        return { contents: `globalThis.__provkeyTrace?.(${JSON.stringify(relative)});\n${source.replace(/^#!.*\n/, '')}`, loader };
      });
    },
  };
}
/**
 * Node's own modules come from process.getBuiltinModule, as CommonJS values: an ES module
 * `import … from 'node:fs'` makes Node build an ES facade that reads every export, and some
 * exports are lazy getters that load more modules (fs.ReadStream loads all of streams,
 * crypto.webcrypto all of WebCrypto): milliseconds of start-up for nothing. It also gives the
 * CommonJS dependencies their require('events') without a require() in an ES module.
 */
function builtinsPlugin() {
  const builtins = new Set(builtinModules.flatMap((name) => (name.startsWith('node:') ? [name] : [name, `node:${name}`])));
  return {
    name: 'node-builtins',
    setup(b) {
      b.onResolve({ filter: /^[a-z_:/]+$/ }, (args) => {
        if (!builtins.has(args.path)) return undefined;
        // `await import('node:fs/promises')` in the CommonJS bundle becomes a lazily initialised
        // module like a static import: it still runs only when that code does, and no import()
        // is left (bin/provkey compiles the bundle as a vm.Script, where import() would need
        // Node's experimental loader hook). The module object has the namespace's named exports.
        return { path: args.path.replace(/^node:/, ''), namespace: 'node-builtin' };
      });
      b.onLoad({ filter: /.*/, namespace: 'node-builtin' }, (args) => ({ contents: LAZY_BUILTINS.has(args.path) ? lazyBuiltin(args.path) : `module.exports = process.getBuiltinModule(${JSON.stringify(`node:${args.path}`)});`, loader: 'js' }));
    },
  };
}

/**
 * The large libraries only some runs use (Azure's SDKs, the prompts with their encodings, the
 * LDAP client, the progress bar: about two thirds of the code) go into their own files beside
 * the npm bundle, each `require`d the first time a command imports it. The bundle every run
 * compiles is then a third of the size, and so is the code cache bin/provkey reads for it.
 * One file per group, so packages of a group share one copy of their common dependencies.
 */
export const VENDOR_GROUPS = {
  azure: ['@azure/identity', '@azure/keyvault-secrets'],
  prompts: ['@inquirer/prompts'],
  ldap: ['ldapts'],
  progress: ['cli-progress'],
};

function vendorPlugin() {
  const groupOf = new Map(Object.entries(VENDOR_GROUPS).flatMap(([group, names]) => names.map((name) => [name, group])));
  return {
    name: 'vendor-groups',
    setup(b) {
      b.onResolve({ filter: /^[@a-z]/ }, (args) => {
        if (args.namespace === 'vendor-ref' || !groupOf.has(args.path)) return undefined;
        return { path: args.path, namespace: 'vendor-ref' };
      });
      b.onResolve({ filter: /^\.\/vendor\// }, (args) => (args.namespace === 'vendor-ref' ? { path: args.path, external: true } : undefined));
      b.onLoad({ filter: /.*/, namespace: 'vendor-ref' }, (args) => ({
        contents: `module.exports = require(${JSON.stringify(`./vendor/${groupOf.get(args.path)}.cjs`)})[${JSON.stringify(args.path)}];`,
        loader: 'js',
      }));
    },
  };
}

/** Each group's file: its packages by name, bundled together (bin/build/bundle.mjs, npm only). */
async function bundleVendors({ outdir, trace }) {
  const options = commonOptions({ kind: 'npm', trace });
  for (const [group, names] of Object.entries(VENDOR_GROUPS)) {
    const contents = `module.exports = {${names.map((name) => `${JSON.stringify(name)}: require(${JSON.stringify(name)})`).join(', ')}};`;
    await build({ ...options, stdin: { contents, resolveDir: root, loader: 'js', sourcefile: `vendor-${group}.js` }, outfile: path.join(outdir, 'vendor', `${group}.cjs`), target: 'node22', format: 'cjs', banner: trace ? { js: TRACE_BANNER } : {} });
  }
}

/**
 * Node modules loaded only when first used: commander requires node:child_process at load (for
 * executable subcommands, which provkey has none of), and with it net, dgram and all of streams,
 * milliseconds of every start-up. The module is a stand-in that loads the real one on first
 * access to anything of it, so a use sees exactly Node's module.
 */
const LAZY_BUILTINS = new Set(['child_process']);
function lazyBuiltin(name) {
  return `let real; const load = () => (real ??= process.getBuiltinModule(${JSON.stringify(`node:${name}`)}));
module.exports = new Proxy({}, {
  get: (_, key) => load()[key],
  has: (_, key) => key in load(),
  ownKeys: () => Reflect.ownKeys(load()),
  getOwnPropertyDescriptor: (_, key) => { const d = Reflect.getOwnPropertyDescriptor(load(), key); return d && { ...d, configurable: true }; },
});`;
}

const TRACE_BANNER = 'globalThis.__provkeyTrace = process.env.PROVKEY_TRACE_LOADS ? (m) => require("node:fs").appendFileSync(process.env.PROVKEY_TRACE_LOADS, m + "\\n") : undefined;';

function commonOptions({ kind, trace, vendors = false }) {
  return {
    bundle: true,
    platform: 'node',
    minify: true,
    keepNames: true,
    legalComments: 'none',
    logLevel: 'error',
    // version.ts reads dist/build.json through import.meta.url only when nothing was defined.
    define: { PROVKEY_EMBEDDED_BUILD: JSON.stringify(buildInfo(kind)) },
    logOverride: { 'empty-import-meta': 'silent' },
    plugins: [builtinsPlugin(), ...(vendors ? [vendorPlugin()] : []), ...(trace ? [tracePlugin()] : [])],
  };
}

/**
 * One CommonJS file: the npm package's bundle (dist/bundle/provkey.cjs, which bin/provkey runs
 * through V8's code cache) and the single executable's (a SEA runs exactly one script). Each
 * `await import('./commands/x.js')` becomes a lazily initialised module: a command still
 * evaluates only the code it uses. One file, not ES module chunks: bin/provkey compiles it as
 * one script whose code cache it can write after a run (the ES module loader's compile cache
 * keeps only what was compiled before the module ran, not the functions a command then called).
 */
export async function bundleCommonJs({ outfile, trace = false, kind = 'sea' }) {
  // A single executable runs one script and can require only Node's own modules: no vendor files.
  const vendors = kind === 'npm';
  const options = commonOptions({ kind, trace, vendors });
  await build({ ...options, entryPoints: [entryPoint], outfile, target: kind === 'sea' ? 'node24' : 'node22', format: 'cjs', banner: trace ? { js: TRACE_BANNER } : {} });
  if (vendors) await bundleVendors({ outdir: path.dirname(outfile), trace });
  return outfile;
}

/**
 * What `provkey --help` and `--version` print, taken from the real program at build time (the
 * bundle just built, run with stdout on a pipe, as commander renders it for anything but a
 * terminal), so bin/provkey can answer them without loading commander or the bundle. Only runs
 * that exit 0 with nothing on stderr are kept. Also the bundle's identity (a digest of its
 * text, which names its code cache) and the command names (which code cache a run uses).
 */
export async function writeManifest({ bundle, manifest }) {
  const { createHash } = await import('node:crypto');
  const { spawnSync } = await import('node:child_process');
  const { writeFile } = await import('node:fs/promises');
  const text = await readFile(bundle);
  // bin/provkey decodes the bundle as latin1, the cheapest decoding: exact only for ASCII.
  if (!text.every((byte) => byte < 0x80)) throw new Error(`bundle: ${bundle} is not ASCII`);
  // No dynamic import() may be left in it: bin/provkey compiles it as a vm.Script (see above).
  if (/\bimport\(/.test(text.toString('latin1'))) throw new Error(`bundle: ${bundle} still has an import()`);
  const id = createHash('sha256').update(text).digest('hex').slice(0, 24);
  const answers = {};
  for (const args of FAST_PATH_ARGUMENTS) {
    const run = spawnSync(process.execPath, [bundle, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    if (run.status === 0 && run.stderr === '' && run.stdout !== '') answers[args.join(' ')] = run.stdout;
  }
  // The real program definition (the tsc output, built before the bundle): its command names.
  const { buildProgram } = await import(path.join(root, 'dist/cli/program.js'));
  const commands = buildProgram(async () => {}).commands.map((command) => command.name());
  await writeFile(manifest, `${JSON.stringify({ id, commands, answers })}\n`);
  return { id, commands, answers };
}

/** The argument lists bin/provkey answers from the manifest (each exactly, nothing else on the line). */
export const FAST_PATH_ARGUMENTS = [['--help'], ['-h'], ['help'], ['--version'], ['-V']];

if (import.meta.url === `file://${process.argv[1]}`) {
  const outdir = path.join(root, 'dist/bundle');
  const { rm } = await import('node:fs/promises');
  // A fresh directory: nothing of an older build is left behind.
  await rm(outdir, { recursive: true, force: true });
  const bundle = await bundleCommonJs({ outfile: path.join(outdir, 'provkey.cjs'), kind: 'npm' });
  await writeManifest({ bundle, manifest: path.join(outdir, 'manifest.json') });
}
