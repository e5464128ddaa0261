// The first lines of a child-process script that imports provkey's TypeScript source directly
// (Node's type stripping; the tsconfig is erasableSyntaxOnly for this): a resolve hook maps the
// NodeNext-style "./x.js" imports to "./x.ts", so a child tests the tree, not whatever dist/ holds.
export const TS_SOURCE_HOOK = `
import { registerHooks } from 'node:module';
registerHooks({
  resolve(specifier, context, nextResolve) {
    try {
      return nextResolve(specifier, context);
    } catch (error) {
      if (error?.code === 'ERR_MODULE_NOT_FOUND' && specifier.startsWith('.') && specifier.endsWith('.js')) {
        return nextResolve(specifier.slice(0, -3) + '.ts', context);
      }
      throw error;
    }
  },
});
`;
