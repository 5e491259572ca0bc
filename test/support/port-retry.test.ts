/**
 * The harness starts a server again on new ports when the port it was given was taken before the server bound it
 * (seen: RabbitMQ exiting with `could_not_start_listener` while another test process held the same port).
 */
import { describe, expect, it, vi } from 'vitest';
import { describeProbeError, freePort, retryPortInUse, ServiceUnavailable } from './servers.js';

const rabbitInUse = new ServiceUnavailable(
  'rabbitmq exited at start: init terminating in do_boot ({error,{could_not_start_listener,127.0.0.1,22720,{{shutdown,{_}}}}})',
);

describe('retryPortInUse', () => {
  it('starts again after a port-in-use exit, and returns what the next start gives', async () => {
    let calls = 0;
    const started = await retryPortInUse(async () => {
      calls += 1;
      if (calls === 1) throw rabbitInUse;
      return 'second start';
    });
    expect(started).toBe('second start');
    expect(calls).toBe(2);
  });

  it('throws any other failure at once', async () => {
    let calls = 0;
    const missing = new ServiceUnavailable('rabbitmq-server is not installed (apt-get install rabbitmq-server)');
    await expect(
      retryPortInUse(async () => {
        calls += 1;
        throw missing;
      }),
    ).rejects.toBe(missing);
    expect(calls).toBe(1);
  });

  it('gives up after three port-in-use exits, with the last one', async () => {
    let calls = 0;
    const inUse = (n: number): ServiceUnavailable => new ServiceUnavailable(`redis exited at start: bind: Address already in use (${n})`);
    await expect(
      retryPortInUse(async () => {
        calls += 1;
        throw inUse(calls);
      }),
    ).rejects.toThrow('(3)');
    expect(calls).toBe(3);
  });

  const notReady = new ServiceUnavailable('etcd did not become ready in 30000 ms (spawned …; last probe: fetch failed (ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:10001))');

  it('with restartIfNotReady, starts once more after a server that never became ready, and only once', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    let calls = 0;
    const started = await retryPortInUse(async () => {
      calls += 1;
      if (calls === 1) throw notReady;
      return 'second start';
    }, 3, true);
    expect(started).toBe('second start');
    calls = 0;
    await expect(
      retryPortInUse(async () => {
        calls += 1;
        throw notReady;
      }, 3, true),
    ).rejects.toBe(notReady);
    expect(calls).toBe(2);
    // Each restart says so, with the reason.
    expect(warn.mock.calls.map((c) => String(c[0]))).toEqual([`test servers: starting once more: ${notReady.message}`, `test servers: starting once more: ${notReady.message}`]);
    warn.mockRestore();
  });

  it('without restartIfNotReady, a server that never became ready is thrown at once', async () => {
    let calls = 0;
    await expect(
      retryPortInUse(async () => {
        calls += 1;
        throw notReady;
      }),
    ).rejects.toBe(notReady);
    expect(calls).toBe(1);
  });
});

describe('describeProbeError', () => {
  it("says what lies under fetch's \"fetch failed\"", async () => {
    // A port nothing listens on.
    const err = await fetch(`http://127.0.0.1:${await freePort()}/`).catch((e: unknown) => e);
    expect(describeProbeError(err)).toMatch(/^fetch failed \(.*ECONNREFUSED/);
  });

  it('gives the message of an error without a cause, and anything else as a string', () => {
    expect(describeProbeError(new Error('/health answered 503'))).toBe('/health answered 503');
    expect(describeProbeError('down')).toBe('down');
  });
});
