/**
 * Keeps node-vault's HTTP transport quiet under `DEBUG=*`.
 *
 * @module
 */
import { createRequire } from 'node:module';

interface DebugModule {
  disable(): string;
  enable(namespaces: string): void;
}

/**
 * node-vault sends requests through axios, whose redirect follower (`follow-redirects`) prints every
 * request's options — the `X-Vault-Token` header included — to the `debug` logger when `DEBUG` matches it
 * (found by the leak test with `DEBUG=*`). This excludes that namespace from the `debug` module the
 * follower actually loads, keeping every other namespace the application enabled.
 */
export function silenceVaultTransportDebug(): void {
  let debug: DebugModule;
  try {
    const fromVault = createRequire(createRequire(import.meta.url).resolve('node-vault'));
    const fromAxios = createRequire(fromVault.resolve('axios'));
    const fromFollower = createRequire(fromAxios.resolve('follow-redirects'));
    debug = fromFollower('debug') as DebugModule;
  } catch {
    return; // no `debug` module next to the follower: it prints nothing
  }
  const current = debug.disable();
  const excluded = current.split(/[\s,]+/).includes('-follow-redirects') ? current : [current, '-follow-redirects'].filter(Boolean).join(',');
  debug.enable(excluded);
}
