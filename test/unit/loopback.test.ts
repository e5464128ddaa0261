// isLoopbackHost: the one rule behind "plain http:// or ldap:// only to loopback" for the
// SCIM target, the LDAP target and the Vault store.

import { describe, expect, it } from 'vitest';
import { isLoopbackHost } from '../../src/core/loopback.js';

describe('isLoopbackHost', () => {
  it.each(['127.0.0.1', '127.8.9.10', '127.255.255.255', 'localhost', 'LOCALHOST', '::1', '[::1]', '0:0:0:0:0:0:0:1', '[0:0:0:0:0:0:0:1]'])('%s is loopback', (host) => {
    expect(isLoopbackHost(host)).toBe(true);
  });

  it.each([
    '128.0.0.1',
    '10.0.0.1',
    '0.0.0.0',
    '1.2.3.4',
    '127.0.0.1.example.com',
    'localhost.example.com',
    // Only a resolver decides where these go.
    'app.localhost',
    'localhost.',
    '::',
    '::2',
    // IPv4-mapped ::ffff:127.0.0.1, as URL.hostname spells it.
    '[::ffff:7f00:1]',
    'fe80::1%lo',
    '',
  ])('%s is not loopback', (host) => {
    expect(isLoopbackHost(host)).toBe(false);
  });

  it('takes hosts as URL.hostname gives them', () => {
    expect(isLoopbackHost(new URL('http://[::1]:8200/').hostname)).toBe(true);
    // WHATWG URL normalises short and hex IPv4 forms to dotted decimal.
    expect(isLoopbackHost(new URL('http://127.1/').hostname)).toBe(true);
    expect(isLoopbackHost(new URL('http://0x7f.0.0.1/').hostname)).toBe(true);
    expect(isLoopbackHost(new URL('ldap://Localhost:389').hostname)).toBe(true);
  });
});
