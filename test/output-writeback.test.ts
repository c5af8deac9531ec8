import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PositionalFile } from '../src/io/file.js';
import { ReplacingOutput } from '../src/io/output.js';
import { VdiskError } from '../src/errors.js';
import { tempDir } from './helpers/peers.js';

/** Makes the file's background (and foreground) flushes fail, as a disk error during writeback would. */
function failFlushes(file: PositionalFile): { calls: number } {
  const seen = { calls: 0 };
  const handle = (file as unknown as { handle: { datasync: () => Promise<void> } }).handle;
  handle.datasync = () => {
    seen.calls++;
    return Promise.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
  };
  return seen;
}

test('a new output is flushed in the background as it is written, and a failed background flush fails the next flush', async (t) => {
  const dir = tempDir(t);
  const file = await PositionalFile.create(join(dir, 'out.img'));
  file.writebackEvery = 1024 * 1024;
  const seen = failFlushes(file);
  file.cache = 'unsafe'; // even when flushes are skipped, an error the disk already reported is not
  await file.writeAt(Buffer.alloc(512 * 1024, 1), 0);
  assert.equal(seen.calls, 0, 'no flush before writebackEvery bytes');
  await file.writeAt(Buffer.alloc(512 * 1024, 2), 512 * 1024);
  assert.equal(seen.calls, 1, 'a flush starts once writebackEvery bytes are written');
  await assert.rejects(file.flush(), (e: unknown) => e instanceof VdiskError && e.code === 'IO' && /flushing failed: EIO/.test(e.message));
  await file.close();
});

test('a convert output whose background flush failed never takes the output name', async (t) => {
  const dir = tempDir(t);
  const target = join(dir, 'disk.vhdx');
  const out = await ReplacingOutput.begin(target, null);
  out.file.writebackEvery = 64 * 1024;
  failFlushes(out.file);
  await out.file.writeAt(Buffer.alloc(128 * 1024, 3), 0);
  await out.file.close();
  await assert.rejects(out.commit(), (e: unknown) => e instanceof VdiskError && /EIO/.test(e.message));
  await out.abort();
  assert.equal(existsSync(target), false);
  assert.deepEqual(readdirSync(dir), []);
});

test('an output written past writebackEvery holds exactly what was written', async (t) => {
  const dir = tempDir(t);
  const target = join(dir, 'disk.raw');
  const out = await ReplacingOutput.begin(target, null);
  out.file.writebackEvery = 256 * 1024;
  const parts = Array.from({ length: 8 }, (_, i) => Buffer.alloc(200 * 1024, i + 1));
  await Promise.all(parts.map((p, i) => out.file.writeAt(p, i * p.length)));
  await out.file.close();
  await out.commit();
  assert.deepEqual(readFileSync(target), Buffer.concat(parts));
  assert.equal(statSync(target).size, 8 * 200 * 1024);
});
