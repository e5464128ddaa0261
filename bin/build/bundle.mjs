// esbuild bundles of the CLI, shared by `npm run build` (dist/bundle/, which bin/provkey starts)
// and the single executable (bin/build/sea.mjs). A bundle starts faster than 150 separate
// modules: one read and one compile per chunk instead of a resolve, read and compile per file.
// Every `await import('./commands/x.js')` stays lazy: in the ESM build it becomes its own chunk
// (read only when the command runs), in the CommonJS build a lazily initialised module.
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
        // `await import('node:fs/promises')` must give the real namespace (its named exports):
        // a dynamic import stays Node's own, and runs only when that code does.
        if (args.kind === 'dynamic-import') return { path: args.path, external: true };
        return { path: args.path.replace(/^node:/, ''), namespace: 'node-builtin' };
      });
      b.onLoad({ filter: /.*/, namespace: 'node-builtin' }, (args) => ({ contents: `module.exports = process.getBuiltinModule(${JSON.stringify(`node:${args.path}`)});`, loader: 'js' }));
    },
  };
}

const TRACE_BANNER = 'globalThis.__provkeyTrace = process.env.PROVKEY_TRACE_LOADS ? (m) => require("node:fs").appendFileSync(process.env.PROVKEY_TRACE_LOADS, m + "\\n") : undefined;';
// The trace banner's require() in an ES module bundle.
const ESM_REQUIRE_BANNER = 'import { createRequire as __provkeyCreateRequire } from "node:module"; const require = __provkeyCreateRequire(import.meta.url);';

function commonOptions({ kind, trace }) {
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
    plugins: trace ? [builtinsPlugin(), tracePlugin()] : [builtinsPlugin()],
  };
}

/** The single executable's bundle: one CommonJS file (a SEA runs exactly one script). */
export async function bundleCommonJs({ outfile, trace = false }) {
  const options = commonOptions({ kind: 'sea', trace });
  await build({ ...options, entryPoints: [entryPoint], outfile, target: 'node24', format: 'cjs', banner: trace ? { js: TRACE_BANNER } : {} });
}

/**
 * The npm package's bundle: ES modules with code splitting into `outdir` (entry: provkey.js).
 * Shared code goes into chunks; each command's code is read only when that command runs.
 */
export async function bundleEsm({ outdir, trace = false }) {
  const options = commonOptions({ kind: 'npm', trace });
  await build({
    ...options,
    entryPoints: { provkey: entryPoint },
    outdir,
    target: 'node22',
    format: 'esm',
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    banner: trace ? { js: `${ESM_REQUIRE_BANNER}\n${TRACE_BANNER}` } : {},
  });
  await refuseDestructuredCommonJsImports(outdir);
  return path.join(outdir, 'provkey.js');
}

/**
 * `const { x } = await import('some-commonjs-package')` works in Node (it reads the names out
 * of the CommonJS source) but not in an esbuild split bundle, whose chunk for that package
 * exports only `default`: x is undefined at run time. Such an import must use `.default`, or be
 * a static import; the build fails rather than ship the difference.
 */
async function refuseDestructuredCommonJsImports(outdir) {
  const { readdir } = await import('node:fs/promises');
  const chunks = path.join(outdir, 'chunks');
  const files = (await readdir(chunks)).map((f) => path.join(chunks, f)).concat(path.join(outdir, 'provkey.js'));
  const defaultOnly = new Set();
  const texts = new Map();
  for (const file of files) {
    const text = await readFile(file, 'utf8');
    texts.set(file, text);
    if (/^(import[^;]*;)*export default [\w$]+\(\);\s*$/.test(text.trim())) defaultOnly.add(path.basename(file));
  }
  for (const [file, text] of texts) {
    for (const match of text.matchAll(/(let|const|var)\s*\{[^}]*\}\s*=\s*await import\("\.\/(?:chunks\/)?([^"]+)"\)/g)) {
      if (defaultOnly.has(match[2])) throw new Error(`bundle: ${path.basename(file)} destructures a dynamic import of the CommonJS chunk ${match[2]}; use its .default or a static import`);
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const outdir = path.join(root, 'dist/bundle');
  const { rm } = await import('node:fs/promises');
  // Old chunks carry hashes in their names: a fresh directory leaves none behind.
  await rm(outdir, { recursive: true, force: true });
  await bundleEsm({ outdir });
}
