import { isIP } from 'node:net';

/**
 * True when `hostname` names this machine, so plain http:// or ldap:// to it never crosses a
 * network: the IPv4 loopback block 127.0.0.0/8, the IPv6 loopback ::1 (in any spelling, with
 * or without the brackets URL.hostname keeps), and the name `localhost`.
 *
 * Deliberately not loopback: other names under .localhost and "localhost." (only a resolver
 * decides where those go, and a DNS server may answer with any address), 0.0.0.0, and
 * IPv4-mapped IPv6 addresses. A host this function refuses only needs https, StartTLS or the
 * config's explicit opt-out; one it wrongly accepted would send a credential in clear text.
 * Pure: no DNS lookup, no I/O.
 */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (host === 'localhost') return true;
  switch (isIP(host)) {
    case 4:
      return host.startsWith('127.');
    case 6:
      // URL parsing gives the canonical form: 0:0:0:0:0:0:0:1 and ::0001 become ::1. A zone
      // id (fe80::1%eth0) is no URL host: not loopback.
      return URL.canParse(`http://[${host}]/`) && new URL(`http://[${host}]/`).hostname === '[::1]';
    default:
      return false;
  }
}
