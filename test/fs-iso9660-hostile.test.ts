import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync, readFileSync, writeFileSync, symlinkSync } from 'node:fs';
import fc from 'fast-check';
import { needPeers, tempDir, vdisk, sh, sha256 } from './helpers/peers.js';
import { noise } from './helpers/iso.js';
import { IsoReader, type IsoNode } from '../src/filesystems/iso9660/reader.js';
import { Filesystem } from '../src/filesystems/filesystem.js';
import { VdiskError } from '../src/errors.js';
import { memoryVolume } from './helpers/memory.js';
import { FsGuard } from './helpers/fs-guard.js';

const SECTOR = 2048;


/** Every operation a user can ask for: walk the whole tree, stat, readlink, read every file (bounded), freeExtents. */
async function exercise(buf: Buffer): Promise<void> {
  const reader = await IsoReader.open(memoryVolume(buf), { name: 'mutant.iso' });
  const fs = new Filesystem(reader, 'mutant.iso');
  const seen = new Set<number>();
  const pending: IsoNode[] = [await reader.root()];
  let entries = 0;
  while (pending.length) {
    const dir = pending.pop() as IsoNode;
    const st = await reader.stat(dir);
    if (seen.has(st.ino)) continue;
    seen.add(st.ino);
    for (const e of await reader.readdir(dir)) {
      if (++entries > 20000) throw new Error('more entries than the image can hold');
      const est = await reader.stat(e.node);
      if (est.type === 'directory') pending.push(e.node);
      else if (est.type === 'symlink') await reader.readlink(e.node);
      else if (est.type === 'file') {
        const f = await reader.open(e.node);
        const chunk = Buffer.alloc(256 * 1024);
        // The start, and the end: a lying size must not make us read (or allocate) it all.
        await f.read(chunk, 0);
        if (f.size > chunk.length) await f.read(chunk, f.size - chunk.length);
      }
    }
  }
  await fs.readdir('/');
  let free = 0;
  for await (const r of fs.freeExtents()) {
    assert.ok(r.offset >= 0 && r.length > 0 && r.offset + r.length <= buf.length);
    if (++free > 100000) throw new Error('unbounded free list');
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms).unref()),
  ]);
}

/** Byte offsets of the directory records in a directory's extent (records never cross a sector). */
function recordStarts(buf: Buffer, start: number, size: number): number[] {
  const out: number[] = [];
  for (let pos = 0; pos < size;) {
    const len = buf[start + pos];
    if (len === 0) {
      pos = (Math.floor(pos / SECTOR) + 1) * SECTOR;
      continue;
    }
    out.push(start + pos);
    pos += len;
  }
  return out;
}

interface Region {
  name: string;
  at: number;
  size: number;
  /** Offsets (absolute) of fields worth aiming at. */
  fields: number[];
}

/** Where the structures are in the clean image, found with the reader itself (it passed the peer tests). */
async function regions(buf: Buffer): Promise<Region[]> {
  const out: Region[] = [{ name: 'volume descriptors', at: 16 * SECTOR, size: 4 * SECTOR, fields: [16 * SECTOR + 80, 16 * SECTOR + 128, 16 * SECTOR + 156 + 2, 16 * SECTOR + 156 + 10, 17 * SECTOR + 71, 17 * SECTOR + 88, 17 * SECTOR] }];
  const reader = await IsoReader.open(memoryVolume(buf), { name: 'clean.iso' });
  const pending: IsoNode[] = [await reader.root()];
  const seen = new Set<number>();
  while (pending.length) {
    const dir = pending.pop() as IsoNode;
    if (!dir.extents.length || seen.has(dir.extents[0].offset)) continue;
    seen.add(dir.extents[0].offset);
    const { offset, length } = dir.extents[0];
    const fields = recordStarts(buf, offset, length).flatMap((r) => [0, 1, 2, 10, 18, 24, 25, 26, 27, 32, 33, buf[r + 32] + 33, buf[r + 32] + 36, buf[r + 32] + 38].map((f) => r + f));
    out.push({ name: `directory at ${offset}`, at: offset, size: length, fields });
    // Continuation areas of this directory's records (xorriso and genisoimage put them in blocks of their own).
    const listing = await (reader as unknown as { listing(d: IsoNode): Promise<{ continuations: { offset: number; length: number }[] }> }).listing(dir);
    for (const c of listing.continuations) out.push({ name: `continuation area at ${c.offset}`, at: c.offset, size: c.length, fields: [c.offset + 2, c.offset + 4, c.offset + 5, c.offset + 6] });
    for (const e of await reader.readdir(dir)) {
      if (e.type === 'directory') pending.push(e.node);
      // zisofs: the header and block pointers, and the first compressed block.
      else if (e.node.zisofsSize !== undefined && e.node.extents.length) {
        const at = e.node.extents[0].offset;
        out.push({ name: `zisofs file ${e.name}`, at, size: Math.min(4096, e.node.extents[0].length), fields: [at + 8, at + 12, at + 13, at + 16, at + 20, at + 24, at + 40] });
      }
    }
  }
  const catalog = (reader as unknown as { bootCatalogSector?: number }).bootCatalogSector;
  if (catalog !== undefined) out.push({ name: 'boot catalog', at: catalog * SECTOR, size: 128, fields: [catalog * SECTOR + 32 + 6, catalog * SECTOR + 32 + 8, catalog * SECTOR + 64 + 2, catalog * SECTOR + 96 + 8] });
  return out;
}

const INTERESTING = [0, 1, 2, 0x21, 0x22, 0x7f, 0x80, 0xff, 0x800, 0xfffff800, 0x7fffffff, 0xffffffff];

const edit = fc.record({
  onField: fc.boolean(),
  field: fc.nat(),
  pos: fc.nat(),
  kind: fc.constantFrom('byte', 'u32'),
  byte: fc.integer({ min: 0, max: 255 }),
  u32: fc.oneof(fc.constantFrom(...INTERESTING), fc.integer({ min: 0, max: 0xffffffff })),
});

function makeBases(dir: string): Buffer[] {
  const src = join(dir, 'src');
  mkdirSync(join(src, 'd1', 'd2', 'd3', 'd4', 'd5', 'd6', 'd7', 'd8', 'd9'), { recursive: true });
  writeFileSync(join(src, 'boot.img'), noise(4096, 1));
  writeFileSync(join(src, 'a.txt'), 'a');
  writeFileSync(join(src, 'b.bin'), noise(10000, 2));
  writeFileSync(join(src, 'd1', 'd2', 'd3', 'd4', 'd5', 'd6', 'd7', 'd8', 'd9', 'deep'), 'deep');
  writeFileSync(join(src, 'N'.repeat(200)), 'long name');
  symlinkSync('x/'.repeat(120) + 'y', join(src, 'longlink'));
  symlinkSync('/abs/target', join(src, 'abs'));
  const xo = join(dir, 'x.iso');
  sh('xorrisofs', ['-quiet', '-R', '-J', '-b', 'boot.img', '-no-emul-boot', '-o', xo, src]);
  const ge = join(dir, 'g.iso');
  sh('genisoimage', ['-quiet', '-R', '-J', '-o', ge, src]);
  const jo = join(dir, 'j.iso');
  sh('genisoimage', ['-quiet', '-J', '-joliet-long', '-o', jo, join(src, 'd1')]);
  const zi = join(dir, 'z.iso');
  writeFileSync(join(src, 'd1', 'text'), 'compressible '.repeat(10000));
  sh('xorriso', ['-no_rc', '-outdev', `stdio:${zi}`, '-map', join(src, 'd1'), '/', '-set_filter_r', '--zisofs', '/', '--', '-commit']);
  return [readFileSync(xo), readFileSync(ge), readFileSync(jo), readFileSync(zi)];
}

test('mutated descriptors, directory records, SUSP/Rock Ridge entries, continuation areas and boot catalogs: a VdiskError or an answer, never a hang', async (t) => {
  if (!needPeers(t, 'xorrisofs', 'genisoimage')) return;
  const dir = tempDir(t);
  const bases = makeBases(dir);
  const maps = await Promise.all(bases.map((b) => regions(b)));
  for (const b of bases) await exercise(b); // the clean images read without complaint
  const guard = new FsGuard();
  t.after(() => guard.close());
  for (const b of bases) await guard.exercise('iso9660', b, 'base.iso', 10_000);
  assert.ok(maps[0].some((r) => r.name.startsWith('continuation')), 'the xorriso image has continuation areas to mutate');
  assert.ok(maps[0].some((r) => r.name === 'boot catalog'));
  assert.ok(maps[3].some((r) => r.name.startsWith('zisofs')));
  const started = Date.now();
  await fc.assert(
    fc.asyncProperty(fc.nat(), fc.nat(), fc.array(edit, { minLength: 1, maxLength: 6 }), async (bi, ri, edits) => {
      if (Date.now() - started > 40_000) return; // the time budget: stop mutating, keep what ran
      const base = bi % bases.length;
      const region = maps[base][ri % maps[base].length];
      const buf = Buffer.from(bases[base]);
      for (const e of edits) {
        const at = e.onField && region.fields.length ? region.fields[e.field % region.fields.length] : region.at + (e.pos % region.size);
        if (e.kind === 'byte' || at + 4 > buf.length) buf[Math.min(at, buf.length - 1)] = e.byte;
        else buf.writeUInt32LE(e.u32 >>> 0, at);
      }
      try {
        // In a worker: a loop that never yields fails as a hang, a heap past its limit as unbounded memory.
        await guard.exercise('iso9660', buf, 'mutant.iso', 5000);
      } catch (err) {
        if (!(err instanceof VdiskError)) throw new Error(`${region.name}: ${(err as Error)?.message ?? err}`);
        assert.ok(!err.message.includes('\n'), err.message);
        assert.match(err.message, /^mutant\.iso: /);
      }
      // The peak, which catches a large buffer allocated and dropped within the case.
      assert.ok(process.resourceUsage().maxRSS < 1024 * 1024, `peak memory ${process.resourceUsage().maxRSS} KiB`);
    }),
    { numRuns: 300 },
  );

  // Through the command line, on a file: one line, a non-zero exit, and the image untouched.
  const bad = Buffer.from(bases[0]);
  const root = bad.readUInt32LE(16 * SECTOR + 156 + 2) * SECTOR;
  const first = root + bad[root] + bad[root + bad[root]]; // the first entry after "." and ".."
  bad[first] = 3; // a record length below 34
  const file = join(dir, 'bad.iso');
  writeFileSync(file, bad);
  const before = await sha256(file);
  const r = vdisk(['ls', '-R', file, '/']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /^vdisk: .*bad\.iso: directory record at byte \d+: length 3 is below the 34 bytes of a record\n$/);
  assert.equal(await sha256(file), before);
});

/** The first SUSP CE entry in a range of the image, as its absolute offset. */
function findCe(buf: Buffer, from = 0): number {
  const at = buf.indexOf(Buffer.from([0x43, 0x45, 28, 1]), from);
  assert.ok(at > 0, 'a CE entry');
  return at;
}

async function refusal(buf: Buffer): Promise<VdiskError> {
  try {
    await withTimeout(exercise(buf), 5000, 'hand-made case');
  } catch (err) {
    assert.ok(err instanceof VdiskError, String((err as Error)?.stack ?? err));
    assert.ok(!err.message.includes('\n'));
    return err;
  }
  assert.fail('no error');
}

test('hand-made damage in peer-made images: each refused with its own one-line message', async (t) => {
  if (!needPeers(t, 'xorrisofs', 'genisoimage')) return;
  const dir = tempDir(t);
  const [xo, ge, , zi] = makeBases(dir);
  const dirOf = (buf: Buffer) => buf.readUInt32LE(16 * SECTOR + 156 + 2) * SECTOR;

  // A CE pointing back at the record's own system use area: a loop.
  {
    const b = Buffer.from(xo);
    const ce = findCe(b, dirOf(b));
    const rec = Math.floor(ce / SECTOR) * SECTOR;
    b.writeUInt32LE(rec / SECTOR, ce + 4);
    b.writeUInt32LE(ce - rec, ce + 12);
    b.writeUInt32LE(28, ce + 20);
    assert.match((await refusal(b)).message, /SUSP continuation areas form a loop/);
  }
  // A CE far past the end of the volume.
  {
    const b = Buffer.from(xo);
    const ce = findCe(b, dirOf(b));
    b.writeUInt32LE(0x7fffffff, ce + 4);
    assert.match((await refusal(b)).message, /SUSP continuation area \(block 2147483647.*outside the volume/);
  }
  // A directory claiming 4 GiB.
  {
    const b = Buffer.from(xo);
    b.writeUInt32LE(0xfffff800, 16 * SECTOR + 156 + 10);
    assert.match((await refusal(b)).message, /directory at byte \d+: size 4294965248 exceeds/);
  }
  // A record crossing the end of its sector.
  {
    const b = Buffer.from(ge);
    const root = dirOf(b);
    const first = root + b[root] + b[root + b[root]];
    // Records of 255 bytes, one name byte each, up to one that runs past the sector's end.
    b.fill(0, first, root + SECTOR);
    let at = first;
    for (; at < root + SECTOR; at += 255) {
      b[at] = 255;
      b[at + 32] = 1;
      b[at + 33] = 0x41 + ((at - first) / 255);
    }
    assert.match((await refusal(b)).message, /directory record at byte \d+: length 255 crosses the end of its sector/);
  }
  // The last record of a directory flagged multi-extent: no final record.
  {
    const b = Buffer.from(ge);
    const root = dirOf(b);
    const starts = recordStarts(b, root, b.readUInt32LE(16 * SECTOR + 156 + 10));
    b[starts[starts.length - 1] + 25] |= 0x80;
    assert.match((await refusal(b)).message, /multi-extent file has no final record/);
  }
  // zisofs block pointers out of order, and past the stored data.
  const zisofs = zi.indexOf(Buffer.from([0x37, 0xe4, 0x53, 0x96, 0xc9, 0xdb, 0xd6, 0x07]));
  assert.ok(zisofs > 0);
  {
    const b = Buffer.from(zi);
    b.writeUInt32LE(1, zisofs + 16 + 4);
    assert.match((await refusal(b)).message, /zisofs block pointer 1 \(1\) is out of order/);
  }
  {
    const b = Buffer.from(zi);
    const p0 = b.readUInt32LE(zisofs + 16);
    b.writeUInt32LE(p0 + 40000, zisofs + 16 + 4);
    b.writeUInt32LE(p0 + 40000, zisofs + 16 + 8);
    assert.match((await refusal(b)).message, /zisofs block pointer 1 \(\d+\) is out of order or past the stored \d+ bytes/);
  }
});
