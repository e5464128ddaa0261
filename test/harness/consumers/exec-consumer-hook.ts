// An exec consumer for tests (docs/consumers.md): argv [node, this file, STATE-FILE]. It keeps
// the value it was switched to in STATE-FILE (0600, written atomically) and answers each action
// from it: validate passes, switch stores the value from stdin, prove/check pass only when the
// stored value is the one on stdin. Erasable TypeScript; node: built-ins only.

import { readFileSync, renameSync, writeFileSync } from 'node:fs';

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: exec-consumer-hook.ts STATE-FILE\n');
  process.exit(64);
}
const value = readFileSync(0, 'utf8');
const action = process.env.PROVKEY_ACTION;
const stored = (): string | undefined => {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
};
switch (action) {
  case 'validate':
    process.exit(value.length > 0 ? 0 : 1);
  case 'switch': {
    const temp = `${file}.${process.pid}.tmp`;
    writeFileSync(temp, value, { mode: 0o600 });
    renameSync(temp, file);
    process.exit(0);
  }
  case 'prove':
  case 'check':
    if (stored() === value) process.exit(0);
    process.stderr.write(`the consumer holds another value (${process.env.PROVKEY_FINGERPRINT} expected)\n`);
    process.exit(1);
  default:
    process.stderr.write(`unknown PROVKEY_ACTION ${action}\n`);
    process.exit(64);
}
