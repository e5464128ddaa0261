// Loaded with `node --import` by test/unit/startup-modules.test.ts: records every module URL
// the process resolves (ESM and CommonJS) and writes the list to PROVKEY_TRACE_LOADS on exit.
import { registerHooks } from 'node:module';
import { writeFileSync } from 'node:fs';

const seen = new Set();
registerHooks({
  resolve(specifier, context, nextResolve) {
    const result = nextResolve(specifier, context);
    seen.add(result.url);
    return result;
  },
});
process.on('exit', () => writeFileSync(process.env.PROVKEY_TRACE_LOADS, [...seen].join('\n')));
