/**
 * The webhook event types, in a module with no imports: the config schema names them too.
 * observer.ts maps the engine's typed events (engine/events.ts) onto them.
 */
export const WEBHOOK_EVENTS = [
  'rotation.succeeded',
  'rotation.failed',
  'rotation.rolled_back',
  'key.lockout',
  'key.revoked',
  'revoke.failed',
  'drill.finished',
  'key.due_soon',
  'key.expiring',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENTS)[number];
