/**
 * A plain TCP forwarder on 127.0.0.1 in front of one server, so a test can take "the server"
 * down (every connection dropped, the port refusing) while the real server, shared by the
 * other tests of the file, keeps running. TLS passes through untouched: the client checks the
 * real server's certificate (connect with tls.serverName set to a name it carries).
 *
 * Erasable TypeScript only; node: built-ins only.
 */
import net from 'node:net';

export interface TcpProxy {
  host: string;
  port: number;
  /** Drops every connection and stops listening: connecting is then refused. */
  close(): Promise<void>;
}

export function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: target.host, port: target.port });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address() as net.AddressInfo;
      let closed = false;
      resolve({
        host: '127.0.0.1',
        port: address.port,
        close: () =>
          new Promise<void>((done) => {
            if (closed) return done();
            closed = true;
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
