import * as v from 'valibot';
import { describe, expect, it } from 'vitest';
import { targetSchema, type ScimTargetConfig } from '../../src/config/schema.js';
import { ConfigError } from '../../src/core/errors.js';
import { isLoopbackHost } from '../../src/core/loopback.js';
import type { AdapterContext } from '../../src/stores/context.js';
import { endpointUrl, parseEndpointUrl } from '../../src/targets/scim/endpoint-url.js';
import { createScimTarget } from '../../src/targets/scim/scim-target.js';

const FIELD = 'keys.app.target.url';

function scimConfig(fields: Record<string, unknown>): ScimTargetConfig {
  const config = v.parse(targetSchema, { type: 'scim', applier: { type: 'store' }, ...fields });
  if (config.type !== 'scim') throw new Error('not scim');
  return config;
}

const context: AdapterContext = {
  configDir: '/nonexistent',
  env: {},
  resolveSecret: async () => {
    throw new Error('must not be called at creation');
  },
  debug: () => undefined,
};

describe('parseEndpointUrl: https everywhere, plain http only to loopback or when allowed', () => {
  it.each([
    'https://app.example.com/scim/v2',
    'http://127.0.0.1:8080/scim/v2',
    'http://127.9.8.7/scim',
    'http://[::1]:9000/scim/v2',
    'http://localhost:3000/scim/v2',
    'http://LOCALHOST/scim',
  ])('accepts %s', (url) => {
    expect(parseEndpointUrl(url, FIELD, false).href).toBe(new URL(url).href);
  });

  it.each(['http://app.example.com/scim/v2', 'http://10.0.0.5/scim', 'http://128.0.0.1/scim', 'http://[::2]/scim', 'http://localhost.example.com/scim'])(
    'refuses plain http to %s, naming the field',
    (url) => {
      expect(() => parseEndpointUrl(url, FIELD, false)).toThrow(ConfigError);
      expect(() => parseEndpointUrl(url, FIELD, false)).toThrow(/^keys\.app\.target\.url: .*plain http to a non-loopback host; use https:\/\/, or set allowInsecureHttp: true$/);
    },
  );

  it('allows plain http to any host with allowInsecureHttp', () => {
    expect(parseEndpointUrl('http://app.example.com/scim/v2', FIELD, true).host).toBe('app.example.com');
  });

  it('refuses credentials in the URL without echoing them', () => {
    const error = captureError(() => parseEndpointUrl('https://admin:hunter2secret@app.example.com/scim', FIELD, false));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toMatch(/^keys\.app\.target\.url: must not contain credentials/);
    expect(error.message).not.toContain('hunter2secret');
  });

  it.each([
    ['not a url', /not an absolute URL/],
    ['ftp://app.example.com/scim', /scheme ftp: is not supported/],
    ['https://app.example.com/scim?token=x', /must not have a query/],
  ])('refuses %s', (url, message) => {
    expect(() => parseEndpointUrl(url, FIELD, false)).toThrow(message);
  });

  it('isLoopbackHost takes bracketed IPv6 as URL.hostname gives it', () => {
    expect(isLoopbackHost(new URL('http://[::1]/').hostname)).toBe(true);
    expect(isLoopbackHost('127.0.0.1')).toBe(true);
    expect(isLoopbackHost('1.2.3.4')).toBe(false);
  });
});

describe('endpointUrl', () => {
  it('keeps the base path, with or without a trailing slash', () => {
    expect(endpointUrl(new URL('https://a.example/scim/v2'), '/Users').href).toBe('https://a.example/scim/v2/Users');
    expect(endpointUrl(new URL('https://a.example/scim/v2/'), '/Users').href).toBe('https://a.example/scim/v2/Users');
    expect(endpointUrl(new URL('https://a.example'), '/ServiceProviderConfig').href).toBe('https://a.example/ServiceProviderConfig');
  });

  it('percent-encodes the Entra filter with %20, not "+"', () => {
    const url = endpointUrl(new URL('https://a.example/scim'), '/Users', { filter: 'externalId eq "0f1e2d3c"' });
    expect(url.search).toBe('?filter=externalId%20eq%20%220f1e2d3c%22');
    expect(url.searchParams.get('filter')).toBe('externalId eq "0f1e2d3c"');
  });
});

describe('createScimTarget', () => {
  it('refuses a non-https SCIM URL at creation, naming keys.<name>.target.url', async () => {
    await expect(createScimTarget('app', scimConfig({ url: 'http://scim.example.com/v2' }), context)).rejects.toThrow(
      /^keys\.app\.target\.url: http:\/\/scim\.example\.com is plain http/,
    );
  });

  it('refuses a non-https token endpoint, naming keys.<name>.target.applier.url', async () => {
    const config = scimConfig({ url: 'https://scim.example.com/v2', applier: { type: 'http', url: 'http://tokens.example.com/admin', authRef: 'env:X' } });
    await expect(createScimTarget('app', config, context)).rejects.toThrow(/^keys\.app\.target\.applier\.url: /);
  });

  it('refuses an exec applier passEnv entry that is not a variable name, or is one of provkey\'s own', async () => {
    const exec = (passEnv: string[]) => scimConfig({ url: 'https://scim.example.com/v2', applier: { type: 'exec', command: ['/bin/true'], passEnv } });
    await expect(createScimTarget('app', exec(['DEPLOY_ENV', 'BAD NAME']), context)).rejects.toThrow(
      /^keys\.app\.target\.applier\.passEnv\.1: "BAD NAME" is not an environment variable name$/,
    );
    await expect(createScimTarget('app', exec(['PROVKEY_PASSPHRASE']), context)).rejects.toThrow(
      /^keys\.app\.target\.applier\.passEnv\.0: PROVKEY_PASSPHRASE: PROVKEY_\* variables are provkey's own and are never passed to a hook$/,
    );
    await expect(createScimTarget('app', exec(['DEPLOY_ENV', 'KUBECONFIG']), context)).resolves.toMatchObject({ type: 'scim' });
    expect(exec([]).applier).toMatchObject({ type: 'exec', passEnv: [] });
    expect(scimConfig({ url: 'https://scim.example.com/v2', applier: { type: 'exec', command: ['/bin/true'] } }).applier).toMatchObject({ passEnv: [] });
  });

  it('refuses a bad duration naming its field', async () => {
    await expect(createScimTarget('app', scimConfig({ url: 'https://scim.example.com', requestTimeout: '10' }), context)).rejects.toThrow(
      /keys\.app\.target\.requestTimeout/,
    );
  });

  it('does no I/O at creation (CA file, admin token) and reports SCIM capabilities', async () => {
    const config = scimConfig({
      url: 'https://scim.example.com/v2',
      propagationTimeout: '90s',
      tls: { caFile: 'missing-ca.pem' },
      applier: { type: 'http', url: 'https://scim.example.com/admin/tokens', authRef: 'env:NOT_SET' },
    });
    const target = await createScimTarget('app', config, context);
    expect(target.type).toBe('scim');
    expect(target.capabilities).toEqual({ overlap: true, negativeProbe: 'free', propagationTimeoutMs: 90_000 });
    await target.close();
  });

  it('an unreadable CA file is a config error naming keys.<name>.target.tls.caFile', async () => {
    const config = scimConfig({ url: 'https://127.0.0.1:9/scim', tls: { caFile: 'missing-ca.pem' } });
    const target = await createScimTarget('app', config, context);
    const secret = { value: 'pk_x', fingerprint: 'sha256:000000000000' };
    await expect(target.test(secret, { expect: 'accept' })).rejects.toThrow(/^keys\.app\.target\.tls\.caFile: cannot read \/nonexistent\/missing-ca\.pem: ENOENT$/);
    await target.close();
  });
});

function captureError(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error('did not throw');
}
