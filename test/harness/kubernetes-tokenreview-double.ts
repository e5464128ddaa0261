// A hand-written test double of KUBERNETES (not of Vault/OpenBao): a tiny local HTTP server
// that stands in for the Kubernetes API server's TokenReview endpoint,
//   POST /apis/authentication.k8s.io/v1/tokenreviews
// so that a real OpenBao's kubernetes auth method (configured with kubernetes_host = this
// server's url) can complete a login. It is not a Kubernetes implementation: it knows one
// service-account JWT and answers authenticated:true for exactly that token (with the
// service account's username/uid/groups), authenticated:false for any other token, and 401
// when the caller's bearer token (OpenBao's token_reviewer_jwt) is not the expected one.
//
// Erasable TypeScript only (Node 24 runs it by type stripping); node: built-ins only.
//
//   const k8s = await startTokenReviewDouble({ jwt, reviewerJwt, namespace: 'provkey', serviceAccount: 'provkey', uid });
//   ... configure auth/<mount>/config with kubernetes_host: k8s.url ...
//   k8s.reviews  // every TokenReview request received: the token asked about, the bearer used
//   await k8s.stop();

import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

export const TOKENREVIEW_PATH = '/apis/authentication.k8s.io/v1/tokenreviews';

export interface TokenReviewDoubleOptions {
  /** The one service-account JWT this "cluster" considers valid. */
  jwt: string;
  /** The bearer token the reviewer (OpenBao) must present; any bearer is accepted when omitted. */
  reviewerJwt?: string;
  namespace: string;
  serviceAccount: string;
  /** The service account's uid (must equal the JWT's uid claim for OpenBao to accept the login). */
  uid?: string;
}

export interface ReviewSeen {
  /** spec.token of the TokenReview request. */
  token: string;
  /** spec.audiences, if any. */
  audiences: string[];
  /** The Authorization header's bearer token, '' if none. */
  bearer: string;
  authenticated: boolean;
}

export interface TokenReviewDouble {
  /** http://127.0.0.1:PORT, for kubernetes_host. */
  url: string;
  uid: string;
  /** Every TokenReview request received, in order. */
  reviews: ReviewSeen[];
  /** Requests to any other method/path, as "METHOD /path" (answered 404). */
  unexpected: string[];
  stop(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/** A Kubernetes-style metav1.Status error body. */
function statusError(code: number, reason: string, message: string): unknown {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startTokenReviewDouble(opts: TokenReviewDoubleOptions): Promise<TokenReviewDouble> {
  const uid = opts.uid ?? randomUUID();
  const reviews: ReviewSeen[] = [];
  const unexpected: string[] = [];

  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (req.method !== 'POST' || url.pathname !== TOKENREVIEW_PATH) {
        unexpected.push(`${req.method} ${url.pathname}`);
        send(res, 404, statusError(404, 'NotFound', 'the server could not find the requested resource'));
        return;
      }
      const auth = req.headers.authorization ?? '';
      const bearer = auth.startsWith('Bearer ') ? auth.slice('Bearer '.length) : '';
      let request: { apiVersion?: string; kind?: string; spec?: { token?: string; audiences?: string[] } };
      try {
        request = JSON.parse(await readBody(req));
      } catch {
        send(res, 400, statusError(400, 'BadRequest', 'the request body is not JSON'));
        return;
      }
      const token = request.spec?.token ?? '';
      const audiences = request.spec?.audiences ?? [];
      if (opts.reviewerJwt !== undefined && bearer !== opts.reviewerJwt) {
        reviews.push({ token, audiences, bearer, authenticated: false });
        send(res, 401, statusError(401, 'Unauthorized', 'Unauthorized'));
        return;
      }
      const authenticated = token === opts.jwt;
      reviews.push({ token, audiences, bearer, authenticated });
      const status = authenticated
        ? {
            authenticated: true,
            user: {
              username: `system:serviceaccount:${opts.namespace}:${opts.serviceAccount}`,
              uid,
              groups: ['system:serviceaccounts', `system:serviceaccounts:${opts.namespace}`, 'system:authenticated'],
            },
            // A real API server echoes the audiences it validated the token against.
            audiences,
          }
        : { authenticated: false, user: {} };
      send(res, 201, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', metadata: { creationTimestamp: null }, spec: { token, audiences }, status });
    })().catch((error: unknown) => {
      if (!res.headersSent) send(res, 500, statusError(500, 'InternalError', String(error)));
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1' }, () => resolve());
  });
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('TokenReview double: no listening address');

  let stopping: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${address.port}`,
    uid,
    reviews,
    unexpected,
    stop: () =>
      (stopping ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}
