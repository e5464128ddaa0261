import { build } from 'esbuild';
import { builtinModules } from 'node:module';
const ext = process.argv[2] ? process.argv[2].split(',') : [];
await build({ entryPoints: ['/work/wt/startup2/src/cli/main.ts'], bundle: true, platform: 'node', format: 'cjs', minify: true, keepNames: process.env.KEEP !== '0', outfile: process.env.OUT ?? '/tmp/pkx/dist/bundle/provkey.cjs', target: 'node22', define: { PROVKEY_EMBEDDED_BUILD: JSON.stringify({version:'0.1.0',commit:'x',kind:'npm',builtAt:null}) }, external: [...builtinModules.flatMap(n => [n, 'node:' + n]), ...ext], logLevel: 'error' });
