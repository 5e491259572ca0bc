/**
 * The service harness: gives a test file a real server.
 *
 * For each kind, in order: a URL from the environment (`STOWAGE_TEST_<KIND>_URL`), else the server binary (on
 * PATH, or built by `scripts/build-test-servers.sh`) started on a free loopback port in a temporary folder, else
 * (Vault, MongoDB, MySQL 8) testcontainers when a Docker engine answers, else the suite is skipped with one line
 * saying why. `STOWAGE_TEST_REQUIRE=etcd,nats` turns such a skip into a failure.
 */
import { afterAll, beforeAll, beforeEach, describe, it } from 'vitest';
import { requiredServices, ServiceUnavailable, startService, type PostgresTls, type Service, type ServiceKind } from './servers.js';

export * from './servers.js';

/**
 * A `describe` block that gets a server of `kind` before its tests and disposes of it after. When the
 * server cannot be had, the block is skipped with the reason — or fails, when `STOWAGE_TEST_REQUIRE`
 * names the kind.
 *
 * @example
 * ```ts
 * serviceSuite('etcd', (svc) => {
 *   it('stores a key', async () => { const url = svc().url; … });
 * });
 * ```
 */
export function serviceSuite(
  kind: ServiceKind,
  fn: (svc: () => Service) => void,
  options: { managed?: boolean; title?: string; postgresTls?: PostgresTls } = {},
): void {
  const title = options.title ?? `${kind} server`;
  describe(title, () => {
    let service: Service | undefined;
    let reason: string | undefined;
    beforeAll(async () => {
      try {
        service = await startService(kind, options);
      } catch (err) {
        if (!(err instanceof ServiceUnavailable)) throw err;
        reason = err.message;
        if (requiredServices().has(kind)) {
          throw new Error(`STOWAGE_TEST_REQUIRE names ${kind}, but it is unavailable: ${reason}`);
        }
        console.warn(`skipped ${title}: ${reason}`);
      }
    }, 180_000);
    beforeEach((context) => {
      if (!service) context.skip(reason);
    });
    afterAll(async () => {
      await service?.dispose();
    }, 60_000);
    fn(() => {
      if (!service) throw new ServiceUnavailable(reason ?? `${kind} was not started`);
      return service;
    });
  });
}

/** A placeholder test that records why a suite cannot run here (for reporters that list skipped tests). */
export function skipReason(kind: ServiceKind, reason: string): void {
  it.skip(`${kind}: ${reason}`, () => undefined);
}

