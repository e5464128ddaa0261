// Measures the redactor: registering many secrets (time, heap) and redact() on every message's
// hot path, short and long text. Run: node test/bench/redact.ts (after npm run build; reads
// dist/; BENCH_DIST=/other/checkout/dist compares another build). BENCH_SECRETS: how many (2,000:
// a 1,000-key rotate run registers the old and the new token of every key).
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = process.env.BENCH_DIST ?? fileURLToPath(new URL('../../dist', import.meta.url));
const { registerSecret, redact } = (await import(path.join(dist, 'core/redact.js'))) as typeof import('../../src/core/redact.ts');
const { DEFAULT_POLICIES, generateSecret } = (await import(path.join(dist, 'core/keygen.js'))) as typeof import('../../src/core/keygen.ts');

const count = Number(process.env.BENCH_SECRETS ?? 2000);
const secrets = Array.from({ length: count }, () => generateSecret(DEFAULT_POLICIES.token));
globalThis.gc?.();
const heapBefore = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
const registering = process.hrtime.bigint();
for (const secret of secrets) registerSecret(secret);
const registerMs = Number(process.hrtime.bigint() - registering) / 1e6;
globalThis.gc?.();
const heapAfter = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
console.log(`register ${count} secrets: ${registerMs.toFixed(0)} ms, ${((heapAfter - heapBefore) / 1e6).toFixed(1)} MB held${globalThis.gc ? '' : ' (run with --expose-gc for an exact figure)'}`);

const line = 'rotate app: the target accepted sha256:1a2b3c4d5e6f after 2 attempts (1.2 s); previous version kept until 2026-12-02T10:00:00Z';
const big = line.repeat(10_000);
const echoed = `401 from server: bad credential "${Buffer.from(secrets[7]!).toString('base64')}" (try again)`;
for (const [name, text, rounds] of [['one status line', line, 20_000], ['a line echoing a secret base64-encoded', echoed, 20_000], ['1.3 MB of JSON output', big, 5]] as const) {
  const started = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) redact(text);
  const perCall = Number(process.hrtime.bigint() - started) / rounds / 1e3;
  console.log(`${name}: ${perCall.toFixed(1)} µs per call (${text.length} chars, ${count} secrets)`);
}
