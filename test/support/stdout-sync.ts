/**
 * For the crash tests' children: their reports must reach the parent even when they are SIGKILLed next.
 */
import { writeSync } from 'node:fs';

/**
 * Writes `text` to stdout synchronously. `process.stdout.write` on a pipe is asynchronous: whatever the pipe
 * cannot take at once waits in the process, and a SIGKILL loses it (a lost `R` line made a parent count a
 * delivered message as never delivered). Once this returns, the text is in the pipe.
 */
export function writeStdoutSync(text: string): void {
  const buf = Buffer.from(text, 'utf8');
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(1, buf, off);
    } catch (err) {
      // A non-blocking pipe that is full: the parent is reading, try again.
      if ((err as { code?: string }).code !== 'EAGAIN') throw err;
    }
  }
}
