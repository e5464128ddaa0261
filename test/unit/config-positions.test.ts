import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/located.ts';

// Config errors point at the line and column of the field, and an unknown field that is a
// typo of a known one gets a "did you mean".
const file = path.join('/etc/provkey', 'provkey.yaml');
const message = (text: string): string => {
  try {
    parseConfigText(text, file);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('the config loaded');
};
const target = '    target: { type: scim, url: "https://app.example.com/scim/v2", applier: { type: store } }';

describe('config error positions and suggestions', () => {
  it('an unknown field: its own line and column, and the field it was probably meant to be', () => {
    expect(message(`keys:\n  app:\n    rotaton: { interval: 30d }\n${target}\n`)).toBe('keys.app: unknown field "rotaton" (did you mean "rotation"?) (provkey.yaml line 3, column 5)');
    expect(message(`keys:\n  app:\n    rotation: { intervall: 30d }\n${target}\n`)).toBe('keys.app.rotation: unknown field "intervall" (did you mean "interval"?) (provkey.yaml line 3, column 17)');
    // Inside a variant (the vault store), the suggestion comes from that variant's fields.
    expect(message('stores:\n  v:\n    type: vault\n    mont: kv\n')).toBe('stores.v: unknown field "mont" (did you mean "mount"?) (provkey.yaml line 4, column 5)');
  });

  it('no suggestion when nothing is close', () => {
    expect(message(`keys:\n  app:\n    colour: blue\n${target}\n`)).toBe('keys.app: unknown field "colour" (provkey.yaml line 3, column 5)');
  });

  it('a bad value after the schema (a duration) points at the value', () => {
    expect(message(`keys:\n  app:\n    rotation: { interval: 2 days }\n${target}\n`)).toMatch(/^keys\.app\.rotation\.interval: is not a duration .* \(provkey\.yaml line 3, column 27\)$/);
  });

  it('invalid YAML: line and column of the syntax error', () => {
    expect(message('keys:\n  app: [\n')).toMatch(/^config line \d+, column \d+: invalid YAML: /);
  });
});
