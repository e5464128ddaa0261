// Loaded with `node --require` by test/unit/startup-modules.test.ts: at exit, writes the Node
// modules the process loaded (process.moduleLoadList, "NativeModule fs" and the like) to
// $PROVKEY_BUILTINS_LIST, one a line.
const fs = require('node:fs');
process.on('exit', () => fs.writeFileSync(process.env.PROVKEY_BUILTINS_LIST, `${process.moduleLoadList.join('\n')}\n`));
