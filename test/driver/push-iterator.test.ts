import { describe, expect, it } from 'vitest';
import { StowageError } from '../../src/ports/errors.js';
import { PushIterator } from '../../src/driver/push-iterator.js';

describe('PushIterator', () => {
  it('hands values out in push order, buffered or pushed to a waiting next()', async () => {
    const it = new PushIterator<number>();
    it.push(1);
    it.push(2);
    expect(await it.next()).toEqual({ done: false, value: 1 });
    expect(await it.next()).toEqual({ done: false, value: 2 });
    const waiting = it.next();
    expect(it.waiting).toBe(true);
    expect(it.push(3)).toBe(true);
    expect(await waiting).toEqual({ done: false, value: 3 });
    expect(it.waiting).toBe(false);
    expect(it.length).toBe(0);
  });

  it('keeps push order over many values (the buffer is compacted as it is read)', async () => {
    const it = new PushIterator<number>();
    const read: number[] = [];
    for (let i = 0; i < 5000; i++) it.push(i);
    for (let i = 0; i < 2500; i++) read.push(((await it.next()) as IteratorYieldResult<number>).value);
    for (let i = 5000; i < 6000; i++) it.push(i);
    while (it.length > 0) read.push(((await it.next()) as IteratorYieldResult<number>).value);
    expect(read).toEqual(Array.from({ length: 6000 }, (_, i) => i));
  });

  it('end() lets the reader read what was pushed before, then returns done', async () => {
    const it = new PushIterator<string>();
    it.push('a');
    it.end();
    expect(it.push('b')).toBe(false);
    expect(await it.next()).toEqual({ done: false, value: 'a' });
    expect(await it.next()).toEqual({ done: true, value: undefined });
    expect(await it.next()).toEqual({ done: true, value: undefined });
  });

  it('end(err) throws the error once, after the values pushed before it, then returns done', async () => {
    const it = new PushIterator<string>();
    const failure = new StowageError('UNAVAILABLE', 'gone');
    it.push('a');
    it.end(failure);
    it.end(new Error('a second end is ignored'));
    expect(await it.next()).toEqual({ done: false, value: 'a' });
    await expect(it.next()).rejects.toBe(failure);
    expect(await it.next()).toEqual({ done: true, value: undefined });
  });

  it('end(err) rejects a next() that waits', async () => {
    const it = new PushIterator<string>();
    const waiting = it.next();
    const failure = new Error('broken');
    it.end(failure);
    await expect(waiting).rejects.toBe(failure);
  });

  it('stop() ends a waiting next() at once and hands back the values never read', async () => {
    const it = new PushIterator<number>();
    it.push(1);
    it.push(2);
    it.push(3);
    expect(await it.next()).toEqual({ done: false, value: 1 });
    expect(it.stop()).toEqual([2, 3]);
    expect(it.ended).toBe(true);
    expect(await it.next()).toEqual({ done: true, value: undefined });
    const other = new PushIterator<number>();
    const waiting = other.next();
    expect(other.stop()).toEqual([]);
    expect(await waiting).toEqual({ done: true, value: undefined });
  });

  it('refuses values pushed after stop(): push returns false and the reader never sees them', async () => {
    const it = new PushIterator<number>();
    it.stop();
    expect(it.push(1)).toBe(false);
    expect(it.length).toBe(0);
    expect(await it.next()).toEqual({ done: true, value: undefined });
  });

  it('return() while a next() waits: the waiting next() returns done and the producer is stopped once', async () => {
    let stops = 0;
    const it: PushIterator<number> = new PushIterator<number>({
      onReturn: () => {
        stops++;
        it.stop();
      },
    });
    const waiting = it.next();
    expect(await it.return()).toEqual({ done: true, value: undefined });
    expect(await waiting).toEqual({ done: true, value: undefined });
    await it.return();
    expect(stops).toBe(1);
    expect(it.push(1)).toBe(false);
  });

  it('return() waits for the producer to stop', async () => {
    let stopped = false;
    const it = new PushIterator<number>({
      onReturn: async () => {
        await new Promise((resolve) => setTimeout(resolve, 20));
        stopped = true;
      },
    });
    await it.return();
    expect(stopped).toBe(true);
  });

  it('a break out of for await stops the producer', async () => {
    let stops = 0;
    const it = new PushIterator<number>({ onReturn: () => void stops++ });
    it.push(1);
    it.push(2);
    for await (const value of it) {
      if (value === 1) break;
    }
    expect(stops).toBe(1);
    expect(it.ended).toBe(true);
  });

  it('refuses a second next() while one waits, and still serves the first', async () => {
    const it = new PushIterator<number>();
    const first = it.next();
    await expect(it.next()).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    it.push(7);
    expect(await first).toEqual({ done: false, value: 7 });
  });

  it('calls onDemand when a next() finds nothing buffered, and the producer may push from it', async () => {
    let demands = 0;
    let n = 0;
    const it: PushIterator<number> = new PushIterator<number>({
      onDemand: () => {
        demands++;
        it.push(++n);
        it.push(++n);
      },
    });
    expect(await it.next()).toEqual({ done: false, value: 1 });
    expect(await it.next()).toEqual({ done: false, value: 2 });
    expect(demands).toBe(1);
    expect(await it.next()).toEqual({ done: false, value: 3 });
    expect(demands).toBe(2);
  });

  it('a next() whose onDemand throws rejects with that error, and the next call may wait again', async () => {
    let fail = true;
    const it = new PushIterator<number>({
      onDemand: () => {
        if (fail) throw new Error('fetch failed');
      },
    });
    await expect(it.next()).rejects.toThrow('fetch failed');
    fail = false;
    const waiting = it.next();
    it.push(1);
    expect(await waiting).toEqual({ done: false, value: 1 });
  });

  it('skips buffered values that went stale while they waited', async () => {
    const expired = new Set<number>();
    const it = new PushIterator<number>({ stale: (v) => expired.has(v) });
    it.push(1);
    it.push(2);
    it.push(3);
    expired.add(1);
    expired.add(2);
    expect(await it.next()).toEqual({ done: false, value: 3 });
    expect(it.length).toBe(0);
  });
});
