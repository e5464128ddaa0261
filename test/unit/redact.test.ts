import { describe, expect, it } from 'vitest';
import { fingerprint } from '../../src/core/fingerprint.js';
import { generateSecret, DEFAULT_POLICIES } from '../../src/core/keygen.js';
import { redact, registerSecret, WINDOW } from '../../src/core/redact.js';

// Item 11 of issue 7: a server or hook that echoes a secret encoded, or only a piece of it,
// must not get it printed. Each row is a form in which the secret can appear in a message.
const token = generateSecret(DEFAULT_POLICIES.token);
const password = 'pw-Ünïcode %/+ & "quoted" = x:y;z!' + generateSecret({ ...DEFAULT_POLICIES.password, length: 24 });
registerSecret(token);
registerSecret(password);

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const forms: [string, string, (s: string) => string][] = [
  ['token', 'as is', (s) => s],
  ['token', 'base64', b64],
  ['token', 'base64 without padding', (s) => b64(s).replace(/=+$/, '')],
  ['token', 'base64url', (s) => Buffer.from(s).toString('base64url')],
  ['token', 'hex', (s) => Buffer.from(s).toString('hex')],
  ['token', 'HEX', (s) => Buffer.from(s).toString('hex').toUpperCase()],
  ['token', 'first 24 characters', (s) => s.slice(0, 24)],
  ['token', 'last 12 characters', (s) => s.slice(-12)],
  ['token', 'a 12-character piece from the middle', (s) => s.slice(17, 17 + WINDOW)],
  ['token', 'base64 of its first 24 characters', (s) => b64(s.slice(0, 24))],
  ['token', 'base64 of a piece starting at character 1', (s) => b64(s.slice(1, 31))],
  ['token', 'base64 of a piece starting at character 2', (s) => b64(s.slice(2, 32))],
  ['token', 'hex of a middle piece', (s) => Buffer.from(s.slice(5, 25)).toString('hex')],
  ['password', 'as is', (s) => s],
  ['password', 'URL-encoded', encodeURIComponent],
  ['password', 'form-encoded', (s) => new URLSearchParams({ v: s }).toString().slice(2)],
  ['password', 'JSON-escaped', (s) => JSON.stringify(s).slice(1, -1)],
  ['password', 'base64', b64],
  ['password', 'base64url', (s) => Buffer.from(s).toString('base64url')],
  ['password', 'hex', (s) => Buffer.from(s).toString('hex')],
  ['password', 'URL-encoded first 20 characters', (s) => encodeURIComponent(s.slice(0, 20))],
];

describe('redact: derived forms of a registered secret', () => {
  it.each(forms)('%s %s is replaced by its fingerprint', (which, _form, encode) => {
    const secret = which === 'token' ? token : password;
    const echoed = encode(secret);
    const line = `401 from server: bad credential "${echoed}" (try again)`;
    const out = redact(line);
    expect(out).toContain(`[${fingerprint(secret)}]`);
    // No window of the echoed form survives, up to the last 3 characters of an encoding's final group.
    for (let i = 0; i + WINDOW <= echoed.length - 3; i++) expect(out).not.toContain(echoed.slice(i, i + WINDOW));
    expect(out.startsWith('401 from server: bad credential "')).toBe(true);
    expect(out.endsWith('" (try again)')).toBe(true);
  });

  it('pieces shorter than the window and unrelated text stay as they are', () => {
    const text = `short piece ${token.slice(3, 3 + WINDOW - 1)} and an ordinary sentence about tokens 0123456789`;
    expect(redact(text)).toBe(text);
  });

  it('a secret of 8 to 11 characters is matched whole', () => {
    registerSecret('S3cr3t-9x');
    expect(redact('value S3cr3t-9x echoed')).toBe(`value [${fingerprint('S3cr3t-9x')}] echoed`);
  });

  it('two secrets in one line are both replaced, each by its own fingerprint', () => {
    const out = redact(`${token.slice(0, 20)} then ${b64(password)}`);
    expect(out).toBe(`[${fingerprint(token)}] then [${fingerprint(password)}]${b64(password).match(/=*$/)![0]}`);
  });
});
