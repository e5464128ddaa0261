// Starts test/harness/proxy/recording-proxy.ts as its own process and reads what it saw.
//
//   const proxy = await startRecordingProxy({ tunnelPort: tlsFront.port });
//   ... HTTPS_PROXY: proxy.url ...
//   proxy.records()   // [{kind:'connection'}, {kind:'connect', target:'vault.test:8200'}, ...]
//   proxy.relayed()   // every byte it tunnelled, both directions
//   await proxy.stop();

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('../proxy/recording-proxy.ts', import.meta.url));

export interface ProxyRecord {
  kind: 'connection' | 'connect' | 'forward';
  target?: string;
  method?: string;
  url?: string;
  headers?: Record<string, string | string[] | undefined>;
  body?: string;
}

export interface RecordingProxy {
  /** http://127.0.0.1:PORT */
  url: string;
  records(): ProxyRecord[];
  relayed(): Buffer;
  stop(): Promise<void>;
}

export async function startRecordingProxy(options: { tunnelPort: number }): Promise<RecordingProxy> {
  const dir = mkdtempSync(path.join(tmpdir(), 'provkey-proxy-'));
  const log = path.join(dir, 'proxy.jsonl');
  const child = spawn(process.execPath, [SCRIPT, log, String(options.tunnelPort)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      const match = /port=(\d+)/.exec(out);
      if (match) resolve(Number(match[1]));
    });
    child.on('exit', (code) => reject(new Error(`recording proxy exited with ${String(code)} before listening`)));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    records: () =>
      readFileSync(log, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as ProxyRecord),
    relayed: () => readFileSync(`${log}.bytes`),
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
