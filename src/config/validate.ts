import { MAX_TIMEOUT_MS, parseDuration } from '../core/duration.js';
import { ConfigError } from '../core/errors.js';
import { isLoopbackHost } from '../core/loopback.js';
import type { ConsumerConfig, KeyConfig } from './schema.js';

/**
 * Checks of a key's config that every command makes at load, before any store or target is
 * opened: `status` must refuse what `test` refuses. Pure, and it loads no adapter (start-up
 * stays cheap). The adapters check their own config again when they are opened.
 */
export function checkKeyConfig(name: string, key: KeyConfig): void {
  const field = `keys.${name}.target`;
  const target = key.target;
  const timeout = (value: string | undefined, at: string, mayBeZero = false) => {
    if (value !== undefined && parseDuration(value, at, MAX_TIMEOUT_MS) <= 0 && !mayBeZero) throw new ConfigError(`${at}: must be longer than 0`);
  };
  timeout(target.propagationTimeout, `${field}.propagationTimeout`, true);
  timeout(target.type === 'scim' ? target.requestTimeout : target.timeout, `${field}.${target.type === 'scim' ? 'requestTimeout' : 'timeout'}`);
  if (target.type === 'scim') {
    checkHttpUrl(target.url, `${field}.url`, target.allowInsecureHttp);
    if (target.applier.type === 'http') {
      checkHttpUrl(target.applier.url, `${field}.applier.url`, target.allowInsecureHttp);
      timeout(target.applier.timeout, `${field}.applier.timeout`);
    }
    if (target.applier.type === 'exec') timeout(target.applier.timeout, `${field}.applier.timeout`);
  } else {
    target.urls.forEach((url, index) => checkLdapUrl(url, `${field}.urls.${index}`, target.startTls, target.allowPlain));
    if (target.passwordPolicy.maxAge !== undefined) parseDuration(target.passwordPolicy.maxAge, `${field}.passwordPolicy.maxAge`);
  }
  checkConsumers(name, key);
}

/** The name a consumer goes by in output and in the claim: its own, or "<type>-<position>". */
export function consumerNameOf(consumer: ConsumerConfig, index: number): string {
  return consumer.name ?? `${consumer.type}-${index + 1}`;
}

function checkConsumers(name: string, key: KeyConfig): void {
  const seen = new Set<string>();
  key.consumers.forEach((consumer, index) => {
    const field = `keys.${name}.consumers.${index}`;
    const id = consumerNameOf(consumer, index);
    if (seen.has(id)) throw new ConfigError(`${field}.name: "${id}" names two consumers of this key`);
    seen.add(id);
    const timeout = (value: string | undefined, at: string) => {
      if (value !== undefined && parseDuration(value, `${field}.${at}`, MAX_TIMEOUT_MS) <= 0) throw new ConfigError(`${field}.${at}: must be longer than 0`);
    };
    switch (consumer.type) {
      case 'entra':
      case 'okta': {
        // Both tell an identity provider where to send the token: that is a SCIM endpoint.
        const base = consumer.type === 'entra' ? consumer.baseAddress : consumer.baseUrl;
        const baseField = consumer.type === 'entra' ? 'baseAddress' : 'baseUrl';
        if (key.target.type !== 'scim') throw new ConfigError(`${field}.type: an ${consumer.type} consumer presents a SCIM token; the key's target is ${key.target.type}`);
        if (base !== undefined) checkHttpUrl(base, `${field}.${baseField}`, key.target.allowInsecureHttp);
        timeout(consumer.timeout, 'timeout');
        parseDuration(consumer.maxRetryDelay, `${field}.maxRetryDelay`, MAX_TIMEOUT_MS);
        if (consumer.type === 'entra') {
          checkHttpsUrl(consumer.graphUrl, `${field}.graphUrl`);
          if (consumer.authorityHost !== undefined) checkHttpsUrl(consumer.authorityHost, `${field}.authorityHost`);
          parseDuration(consumer.auditWindow, `${field}.auditWindow`);
        } else {
          checkHttpUrl(consumer.orgUrl, `${field}.orgUrl`, consumer.allowInsecureHttp);
        }
        break;
      }
      case 'exec':
        timeout(consumer.timeout, 'timeout');
        break;
      case 'store':
        timeout(consumer.timeout, 'timeout');
        if (consumer.probe && 'url' in consumer.probe) checkHttpUrl(consumer.probe.url, `${field}.probe.url`, consumer.probe.allowInsecureHttp);
        break;
      case 'file':
        break;
    }
  });
}

/** Credentials for Microsoft Graph go over https only, loopback included (a double has its own CA). */
function checkHttpsUrl(raw: string, field: string): void {
  const url = URL.parse(raw) ?? undefined;
  if (!url || url.protocol !== 'https:') throw new ConfigError(`${field}: must be an https:// URL`);
}

/** https, or plain http only to loopback or with the config's explicit opt-out. */
export function checkHttpUrl(raw: string, field: string, allowInsecureHttp: boolean): void {
  const url = URL.parse(raw) ?? undefined; // one parse, not canParse and then new URL (20,000 URLs in a 10,000-key config)
  if (!url) throw new ConfigError(`${field}: not an absolute URL (e.g. https://app.example.com/scim/v2)`);
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ConfigError(`${field}: scheme ${url.protocol} is not supported (use https://)`);
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname) && !allowInsecureHttp) {
    throw new ConfigError(`${field}: ${url.origin} is plain http to a non-loopback host; use https://, or set allowInsecureHttp: true`, 'config.insecure');
  }
}

/** ldaps://, ldap:// with StartTLS, or plain LDAP only to loopback or with allowPlain. */
function checkLdapUrl(raw: string, field: string, startTls: boolean, allowPlain: boolean): void {
  const url = URL.parse(raw) ?? undefined;
  if (!url) throw new ConfigError(`${field}: not an LDAP URL (e.g. ldaps://ldap.example.com or ldap://ldap.example.com with startTls)`);
  if (url.protocol !== 'ldap:' && url.protocol !== 'ldaps:') throw new ConfigError(`${field}: scheme ${url.protocol} is not supported (use ldaps:// or ldap:// with StartTLS)`);
  if (!url.hostname) throw new ConfigError(`${field}: has no host (e.g. ldaps://ldap.example.com)`);
  if (url.protocol === 'ldap:' && !startTls && !allowPlain && !isLoopbackHost(url.hostname)) {
    throw new ConfigError(`${field}: ${url.protocol}//${url.host} without StartTLS sends the bind password in plain text to a non-loopback host; use ldaps://, set startTls: true, or set allowPlain: true`, 'config.insecure');
  }
}

/** Config values are short: a URL, a DN, a path, a command word. Longer is a mistake (or a pasted file). */
export const MAX_CONFIG_STRING = 4096;
/** Keys an object must never be given: the schema library drops them silently, so a store named so would vanish. */
const RESERVED_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Walks the parsed YAML before the schema sees it: the bounds and characters no field may
 * have, named by their path. NUL would cut a path short in the OS (or reach it as an
 * internal error); reserved keys would be dropped without a word.
 */
export function checkConfigData(data: unknown, at: string[] = []): void {
  const where = () => (at.length ? at.join('.') : 'config');
  if (typeof data === 'string') {
    if (data.includes('\0')) throw new ConfigError(`${where()}: contains a NUL character`, 'config.invalid');
    if (data.length > MAX_CONFIG_STRING) throw new ConfigError(`${where()}: longer than ${MAX_CONFIG_STRING} characters`, 'config.invalid');
    return;
  }
  if (typeof data !== 'object' || data === null) return;
  if (Array.isArray(data)) {
    data.forEach((item, index) => checkConfigData(item, [...at, String(index)]));
    return;
  }
  for (const [key, value] of Object.entries(data)) {
    if (RESERVED_KEYS.has(key)) throw new ConfigError(`${where()}: "${key}" is a reserved name and cannot be used`, 'config.invalid');
    if (key.includes('\0') || key.length > 256) throw new ConfigError(`${where()}: a field name is too long or contains a NUL character`, 'config.invalid');
    checkConfigData(value, [...at, key]);
  }
}
