/**
 * The inversify face of Stowage: tokens for each port and a `ContainerModule` that binds them.
 *
 * @module
 */
import { ContainerModule } from 'inversify';
import type { Stowage } from './stowage.js';

/**
 * Injection tokens. Use them with `@inject(TOKENS.Config)` on constructor parameters (give every parameter
 * an explicit `@inject`; some TypeScript runners emit no decorator metadata).
 */
export const TOKENS = Object.freeze({
  /** The whole {@link Stowage} object. */
  Stowage: Symbol.for('stowage.Stowage'),
  /** The config port (`ConfigStore`). */
  Config: Symbol.for('stowage.ConfigStore'),
  /** The secrets port (`SecretStore`). */
  Secrets: Symbol.for('stowage.SecretStore'),
  /** The queue port (`Queue`). */
  Queue: Symbol.for('stowage.Queue'),
  /** The cache port (`Cache`). */
  Cache: Symbol.for('stowage.Cache'),
  /** The documents port (`DocumentStore`). */
  Documents: Symbol.for('stowage.DocumentStore'),
});

/**
 * A `ContainerModule` binding {@link TOKENS} to the ports of an opened {@link Stowage} (as constants, so
 * `container.get` stays synchronous). Ports that were not opened are not bound.
 *
 * @example
 * ```ts
 * const stowage = await createStowage();
 * const container = new Container();
 * await container.load(stowageContainerModule(stowage));
 * const config = container.get<ConfigStore>(TOKENS.Config);
 * ```
 */
export function stowageContainerModule(stowage: Stowage): ContainerModule {
  return new ContainerModule(({ bind }) => {
    bind(TOKENS.Stowage).toConstantValue(stowage);
    const ports = [
      [TOKENS.Config, 'config'],
      [TOKENS.Secrets, 'secrets'],
      [TOKENS.Queue, 'queue'],
      [TOKENS.Cache, 'cache'],
      [TOKENS.Documents, 'documents'],
    ] as const;
    for (const [token, port] of ports) {
      let value: unknown;
      try {
        value = stowage[port];
      } catch {
        continue; // not opened
      }
      bind(token).toConstantValue(value);
    }
  });
}
