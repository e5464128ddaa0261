// Measures redact() on every message's hot path: many registered secrets, long and short text.
// Run: node test/bench/redact.ts (after npm run build; reads dist/).
import { registerSecret, redact } from '../../dist/core/redact.js';
import { DEFAULT_POLICIES, generateSecret } from '../../dist/core/keygen.js';

for (let i = 0; i < 100; i++) registerSecret(generateSecret(DEFAULT_POLICIES.token));
const line = 'rotate app: the target accepted sha256:1a2b3c4d5e6f after 2 attempts (1.2 s); previous version kept until 2026-12-02T10:00:00Z';
const big = line.repeat(10_000);
for (const [name, text, rounds] of [['one status line', line, 20_000], ['1.3 MB of JSON output', big, 5]] as const) {
  const started = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) redact(text);
  const perCall = Number(process.hrtime.bigint() - started) / rounds / 1e3;
  console.log(`${name}: ${perCall.toFixed(1)} µs per call (${text.length} chars, 100 secrets)`);
}
