// Moved to src/io (shared by the stores and the audit log); kept so existing imports still work.
export { syncDirectory, writeFileAtomic } from '../../io/atomic-write.js';
