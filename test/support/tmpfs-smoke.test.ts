import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { fullDiskSuite } from './tmpfs.js';

fullDiskSuite('tmpfs harness', 256 * 1024, (fs) => {
  it('fill() makes the next write fail with ENOSPC and free() brings the space back', async () => {
    await fs().fill();
    await expect(writeFile(join(fs().dir, 'x'), Buffer.alloc(8192))).rejects.toMatchObject({ code: 'ENOSPC' });
    await fs().free();
    await writeFile(join(fs().dir, 'x'), Buffer.alloc(8192));
  });
});
