import { expect, it } from 'vitest';
import { serviceSuite, type ServiceKind } from './services.js';

for (const kind of ['etcd', 'nats', 'redis', 'mariadb', 'postgres', 'zookeeper'] as ServiceKind[]) {
  serviceSuite(kind, (svc) => {
    it(`starts ${kind} on a loopback port and restarts it on the same port`, async () => {
      const service = svc();
      expect(service.url).toContain('127.0.0.1:');
      if (!service.managed) return;
      const before = service.pid;
      await service.stop();
      expect(service.pid).toBeUndefined();
      await service.start();
      expect(service.pid).toBeGreaterThan(0);
      expect(service.pid).not.toBe(before);
    }, 60_000);
  });
}
