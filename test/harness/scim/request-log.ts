// The SCIM test server's own request log (server.ts --log), parsed: what a client really sent,
// counted on the server side. Erasable TypeScript only; node: built-ins only.
//
//   const scim = await startScimServer({ log: true, ... });
//   const mark = scimRequests(scim.stderr()).length;
//   ... run provkey ...
//   const sent = scimRequests(scim.stderr()).slice(mark);

export type LoggedRequest = {
  method: string;
  /** Path only (the server never logs the query string). */
  path: string;
  status: number;
  /** First 8 hex of the SHA-256 digest of the bearer token ("-" when there was none). */
  token: string;
};

const LINE = /^scim-server: ([A-Z]+) (\S+) (\d{3}) token=(\S+) \d+ms$/;

/** Every request line of a --log stderr, oldest first (other log lines are left out). */
export function scimRequests(stderr: string): LoggedRequest[] {
  const requests: LoggedRequest[] = [];
  for (const line of stderr.split("\n")) {
    const match = LINE.exec(line);
    if (match) requests.push({ method: match[1]!, path: match[2]!, status: Number(match[3]), token: match[4]! });
  }
  return requests;
}
