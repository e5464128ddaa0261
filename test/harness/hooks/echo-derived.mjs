// An exec hook that misbehaves the way item 11 of issue 7 describes: it reads the token from
// stdin, echoes it back base64-encoded and as its first 24 characters on stderr, and fails.
// It also writes the token to the file named by argv[2], so the test knows what to look for.
import { appendFileSync } from 'node:fs';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const token = Buffer.concat(chunks).toString('utf8').replace(/\n$/, '');
appendFileSync(process.argv[2], `${token}\n`);
process.stderr.write(`rejected ${Buffer.from(token).toString('base64')} (starts ${token.slice(0, 24)}, hex ${Buffer.from(token).toString('hex').slice(0, 40)})\n`);
process.exit(1);
