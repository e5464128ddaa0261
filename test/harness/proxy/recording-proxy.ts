// A tiny HTTP proxy process for tests that records everything it is asked to do and every
// byte it relays, so a test can prove what a proxy in the path could have read.
//
//   node recording-proxy.ts LOG_FILE TUNNEL_PORT
//
// - CONNECT host:port: recorded, then tunnelled to 127.0.0.1:TUNNEL_PORT whatever host was
//   asked for (tests never send traffic off the machine); both directions' bytes are appended
//   to LOG_FILE.bytes.
// - any other request (plain forwarding, absolute URL): recorded with its headers and answered
//   502 by the proxy itself; nothing is forwarded anywhere.
// Records are JSON lines in LOG_FILE. The listening port is printed on stdout as "port=N".
// Erasable TypeScript only (Node runs it by type stripping); node: built-ins only.

import { appendFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';

const [logFile, tunnelPortText] = process.argv.slice(2);
if (!logFile || !tunnelPortText) {
  process.stderr.write('usage: recording-proxy.ts LOG_FILE TUNNEL_PORT\n');
  process.exit(2);
}
const tunnelPort = Number(tunnelPortText);
const bytesFile = `${logFile}.bytes`;
writeFileSync(logFile, '');
writeFileSync(bytesFile, '');

const record = (entry: Record<string, unknown>): void => appendFileSync(logFile, `${JSON.stringify(entry)}\n`);

const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    record({ kind: 'forward', method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
    res.writeHead(502, { 'content-type': 'text/plain' }).end('recording proxy: forwarding refused\n');
  });
});

server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
  record({ kind: 'connect', target: req.url, headers: req.headers });
  const upstream = net.connect(tunnelPort, '127.0.0.1', () => {
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length) upstream.write(head);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  const keep = (chunk: Buffer) => appendFileSync(bytesFile, chunk);
  client.on('data', keep);
  upstream.on('data', keep);
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close);
  upstream.on('error', close);
  client.on('close', close);
  upstream.on('close', close);
});

server.on('connection', () => record({ kind: 'connection' }));
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`port=${(server.address() as net.AddressInfo).port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
