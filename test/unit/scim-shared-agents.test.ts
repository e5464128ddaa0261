import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createHttpClient, type HttpClient } from '../../src/targets/scim/http-client.js';

/**
 * Issue 8: the SCIM targets of one run share keep-alive connections to one server (one pool per
 * server, not one connection per key). Counted on a plain node:http server on 127.0.0.1 that
 * records the connections it accepts and the Authorization header of each request.
 */

interface CountingServer {
  url: URL;
  connections: Socket[];
  closed: () => number;
  authorizations: (string | undefined)[];
  server: Server;
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => { s.closeAllConnections(); s.close(() => resolve()); })));
});

async function countingServer(): Promise<CountingServer> {
  const connections: Socket[] = [];
  const authorizations: (string | undefined)[] = [];
  let closed = 0;
  const server = createServer((req, res) => {
    authorizations.push(req.headers.authorization);
    res.setHeader('content-type', 'application/json');
    res.end('{"ok":true}');
  });
  server.on('connection', (socket: Socket) => {
    connections.push(socket);
    socket.on('close', () => closed++);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: new URL(`http://127.0.0.1:${port}/scim/v2/Users`), connections, closed: () => closed, authorizations, server };
}

const get = async (client: HttpClient, url: URL, bearer: string) => {
  const reply = await client.send({ method: 'GET', url, bearer, timeoutMs: 5000 });
  expect(reply.kind === 'response' && reply.status).toBe(200);
};

/** Resolves once the server has seen `count` sockets close (a barrier, not a sleep). */
async function closedAtLeast(server: CountingServer, count: number): Promise<void> {
  while (server.closed() < count) await new Promise((resolve) => setImmediate(resolve));
}

describe('SCIM HTTP client: connections shared within a run', () => {
  it('two keys of one run on one server use one connection, each request with its own token', async () => {
    const server = await countingServer();
    const runScope = new Map<string, unknown>();
    const a = createHttpClient({}, { configDir: '/', runScope }, 'keys.a.target.tls.caFile');
    const b = createHttpClient({}, { configDir: '/', runScope }, 'keys.b.target.tls.caFile');
    await get(a, server.url, 'token-of-key-a');
    await get(b, server.url, 'token-of-key-b');
    await get(a, server.url, 'token-of-key-a');
    expect(server.connections).toHaveLength(1);
    expect(server.authorizations).toEqual(['Bearer token-of-key-a', 'Bearer token-of-key-b', 'Bearer token-of-key-a']);
    // One key finishing leaves the pool to the others; the last one closes it.
    a.close();
    await get(b, server.url, 'token-of-key-b');
    expect(server.connections).toHaveLength(1);
    expect(server.closed()).toBe(0);
    b.close();
    await closedAtLeast(server, 1);
    expect(server.connections).toHaveLength(1);
  });

  it('clients of different runs do not share connections', async () => {
    const server = await countingServer();
    const a = createHttpClient({}, { configDir: '/', runScope: new Map() }, 'keys.a.target.tls.caFile');
    const b = createHttpClient({}, { configDir: '/', runScope: new Map() }, 'keys.b.target.tls.caFile');
    await get(a, server.url, 'token-a');
    await get(b, server.url, 'token-b');
    expect(server.connections).toHaveLength(2);
    a.close();
    b.close();
    await closedAtLeast(server, 2);
  });

  it('an unreadable CA file fails that client (exit 2) and is not kept for the run', async () => {
    const server = await countingServer();
    const runScope = new Map<string, unknown>();
    const https = new URL(server.url.href.replace('http:', 'https:'));
    const a = createHttpClient({ caFile: 'no-such-ca.pem' }, { configDir: '/nonexistent-dir', runScope }, 'keys.a.target.tls.caFile');
    await expect(a.send({ method: 'GET', url: https, timeoutMs: 2000 })).rejects.toThrow(/keys\.a\.target\.tls\.caFile: cannot read/);
    await expect(a.send({ method: 'GET', url: https, timeoutMs: 2000 })).rejects.toThrow(/cannot read/);
    // Plain HTTP of the same run is untouched.
    const b = createHttpClient({}, { configDir: '/', runScope }, 'keys.b.target.tls.caFile');
    await get(b, server.url, 'token-b');
    a.close();
    b.close();
  });
});
