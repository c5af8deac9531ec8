import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { open as openFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { needPeers, tempDir } from './helpers/peers.js';
import { havePycdlib, makeFilledUdf, makePycdlibUdf } from './helpers/udf.js';
import { VdiskError } from '../src/errors.js';
import { Filesystem } from '../src/filesystems/filesystem.js';
import type { VolumeReader } from '../src/filesystems/types.js';
import { udfDriver } from '../src/filesystems/udf/driver.js';
import { crcItu } from '../src/filesystems/udf/tag.js';

const MiB = 1024 * 1024;

interface Base {
  path: string;
  size: number;
  blockSize: number;
  /** Sectors that start with a descriptor tag (valid checksum): the structures worth damaging. */
  descriptors: number[];
}

/** Blocks whose first 16 bytes are a tag with a valid checksum and a known identifier (read in chunks: the volume is large and sparse). */
function findDescriptors(img: string, bs: number): number[] {
  const out: number[] = [];
  const fd = openSync(img, 'r');
  const chunk = Buffer.alloc(4 * MiB);
  try {
    for (let pos = 0; ; pos += chunk.length) {
      const n = readSync(fd, chunk, 0, chunk.length, pos);
      if (n <= 0) break;
      for (let at = 0; at + 16 <= n; at += bs) {
        const id = chunk.readUInt16LE(at);
        if (!((id >= 1 && id <= 9) || (id >= 256 && id <= 266))) continue;
        let sum = 0;
        for (let i = 0; i < 16; i++) if (i !== 4) sum += chunk[at + i];
        if ((sum & 0xff) === chunk[at + 4]) out.push((pos + at) / bs);
      }
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

function readBlock(img: string, at: number, bs: number): Buffer {
  const fd = openSync(img, 'r');
  try {
    const b = Buffer.alloc(bs);
    readSync(fd, b, 0, bs, at);
    return b;
  } finally {
    closeSync(fd);
  }
}

/** The base volume with byte patches over it: the image file is only read. */
function patchedVolume(fh: FileHandle, size: number, patches: Map<number, number>): VolumeReader {
  return {
    size,
    async read(offset: number, length: number): Promise<Buffer> {
      const buf = Buffer.alloc(length);
      const n = Math.max(0, Math.min(length, size - offset));
      if (n > 0) await fh.read(buf, 0, n, offset);
      for (const [at, v] of patches) if (at >= offset && at < offset + length) buf[at - offset] = v;
      return buf;
    },
  };
}

/** Re-seals a damaged descriptor's tag (checksum and CRC) so the damage reaches the code past the tag checks. */
function reseal(read: (at: number) => number, write: (at: number, v: number) => void, start: number, bs: number): void {
  const crcLength = read(start + 10) | (read(start + 11) << 8);
  if (crcLength > 0 && crcLength <= bs - 16) {
    const body = Buffer.alloc(crcLength);
    for (let i = 0; i < crcLength; i++) body[i] = read(start + 16 + i);
    const crc = crcItu(body);
    write(start + 8, crc & 0xff);
    write(start + 9, crc >> 8);
  }
  let sum = 0;
  for (let i = 0; i < 16; i++) if (i !== 4) sum += read(start + i);
  write(start + 4, sum & 0xff);
}

/** Everything a user can ask: the whole tree, every file's bytes, every link, the free map. */
async function exercise(fs: Filesystem): Promise<void> {
  const seen = { n: 0 };
  const visit = async (dir: string, depth: number): Promise<void> => {
    if (depth > 20) return;
    for (const e of await fs.readdir(dir)) {
      if (++seen.n > 5000) return;
      const p = dir === '/' ? `/${e.name}` : `${dir}/${e.name}`;
      const st = await fs.lstat(p);
      if (st.type === 'directory') await visit(p, depth + 1);
      else if (st.type === 'symlink') await fs.readlink(p);
      else if (st.type === 'file') {
        const f = await fs.open(p);
        const buf = Buffer.alloc(256 * 1024);
        for (let pos = 0, i = 0; pos < f.size && i < 64; i++) {
          const n = await f.read(buf, pos);
          if (n <= 0) break;
          pos += n;
        }
        await f.dataRanges?.();
      }
    }
  };
  await visit('/', 0);
  let extents = 0;
  for await (const r of fs.freeExtents()) {
    assert.ok(r.length > 0 && r.offset >= 0);
    if (++extents > 1_000_000) break;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`hang: ${what} took more than ${ms} ms`)), ms);
    }),
  ]);
}

test('hostile UDF volumes: damaged descriptors, entries, allocation descriptors and FIDs give one-line VdiskErrors, never a hang', async (t) => {
  if (!needPeers(t, 'mkudffs', 'udfclient')) return;
  const dir = tempDir(t);
  const src = join(dir, 'src');
  mkdirSync(join(src, 'a', 'b'), { recursive: true });
  writeFileSync(join(src, 'small.txt'), 'tiny');
  writeFileSync(join(src, 'a', 'mid.bin'), randomBytes(70_000));
  writeFileSync(join(src, 'a', 'b', 'leaf'), 'leaf');
  for (let i = 0; i < 30; i++) writeFileSync(join(src, 'a', `entry-number-${i}`), String(i));
  const bases: Base[] = [];
  const udf512 = join(dir, 'udfclient.img');
  await makeFilledUdf(udf512, { rev: '2.01', blockSize: 512, size: 256 * MiB, src, label: 'hostile' });
  bases.push({ path: udf512, size: 256 * MiB, blockSize: 512, descriptors: findDescriptors(udf512, 512) });
  // pycdlib: long ADs, symlinks; 2048-byte blocks.
  if (havePycdlib()) {
    const iso = join(dir, 'pycdlib.iso');
    symlinkSync('../small.txt', join(src, 'a', 'up'));
    makePycdlibUdf(src, iso);
    bases.push({ path: iso, size: statSync(iso).size, blockSize: 2048, descriptors: findDescriptors(iso, 2048) });
  }
  for (const b of bases) assert.ok(b.descriptors.length > 10, `${b.path}: descriptors found`);
  const handles = await Promise.all(bases.map((b) => openFile(b.path, 'r')));
  t.after(() => Promise.all(handles.map((h) => h.close())));
  const stamps = bases.map((b) => statSync(b.path).ctimeMs);

  // Sanity: undamaged, every base reads through.
  for (const [i, b] of bases.entries()) await exercise(new Filesystem(await udfDriver.open(patchedVolume(handles[i], b.size, new Map()), { name: 'base' }), 'base'));

  const mutation = fc.record({
    base: fc.nat({ max: bases.length - 1 }),
    pick: fc.nat(),
    changes: fc.array(
      fc.record({
        // Mostly the fixed fields at the start of a descriptor, sometimes anywhere in the block.
        at: fc.oneof(fc.nat({ max: 255 }), fc.nat({ max: 4095 })),
        width: fc.constantFrom(1, 2, 4),
        value: fc.oneof(fc.constantFrom(0, 1, 0xff, 0xffff, 0xffffffff, 0x7fffffff, 0x40000000, 0xc0000000), fc.nat({ max: 0xffffffff })),
      }),
      { minLength: 1, maxLength: 4 },
    ),
    reseal: fc.boolean(),
  });
  const started = Date.now();
  let errors = 0;
  let fine = 0;
  await fc.assert(
    fc.asyncProperty(mutation, async (m) => {
      const b = bases[m.base];
      const bs = b.blockSize;
      const sector = b.descriptors[m.pick % b.descriptors.length];
      const start = sector * bs;
      const patches = new Map<number, number>();
      const original = readBlock(b.path, start, bs);
      const read = (at: number) => patches.get(at) ?? original[at - start];
      const write = (at: number, v: number) => patches.set(at, v & 0xff);
      for (const c of m.changes) {
        const at = start + (c.at % (bs - 4));
        for (let k = 0; k < c.width; k++) write(at + k, Math.floor(c.value / 2 ** (8 * k)));
      }
      if (m.reseal) reseal(read, write, start, bs);
      const v = patchedVolume(handles[m.base], b.size, patches);
      try {
        await withTimeout((async () => exercise(new Filesystem(await udfDriver.open(v, { name: 'hostile.img' }), 'hostile.img')))(), 10_000, `sector ${sector}`);
        fine++;
      } catch (err) {
        if (!(err instanceof VdiskError)) throw err;
        assert.ok(!err.message.includes('\n'), `one line: ${err.message}`);
        assert.match(err.message, /^hostile\.img: /u);
        errors++;
      }
    }),
    { numRuns: 250, interruptAfterTimeLimit: 45_000 },
  );
  assert.ok(errors > 0 && fine > 0, `both outcomes seen (${errors} errors, ${fine} read through)`);
  t.diagnostic(`${errors} refused, ${fine} read through, in ${Date.now() - started} ms`);
  bases.forEach((b, i) => assert.equal(statSync(b.path).ctimeMs, stamps[i], 'the image is not written'));
});
