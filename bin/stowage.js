#!/usr/bin/env node
// The `stowage` command. A published package runs the compiled CLI; a clone of the repository runs the
// TypeScript sources through tsx (a dev dependency), so no build step is needed to try it.
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../src/cli/main.ts', import.meta.url).href);
}
