// Moved to src/io (shared by the stores and the audit log); kept so existing imports still work.
export { defaultLockOptions, withFileLock, type LockOptions } from '../../io/file-lock.js';
