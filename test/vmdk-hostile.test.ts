import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { needPeers, sh, tempDir, vdisk } from './helpers/peers.js';
import { qemuVmdk, variedFixture } from './helpers/vmdk.js';
import { openImage, describeImage, mapImage, checkImage, VdiskError } from '../src/index.js';

const MiB = 1024 * 1024;
const SECTOR = 512;

const HEADER_FIELDS: [number, number][] = [[0, 4], [4, 4], [8, 4], [12, 8], [20, 8], [28, 8], [36, 8], [44, 4], [48, 8], [56, 8], [64, 8], [72, 1], [77, 2]];
const U32 = [0, 1, 2, 7, 0x80, 0x200, 0x1000, 0x7fffffff, 0xffffffff];
const U64 = [0n, 1n, 21n, 128n, 1n << 20n, 1n << 40n, 1n << 53n, (1n << 64n) - 1n];

interface Base {
  name: string;
  bytes: Buffer;
  /** [offset, length] regions worth aiming at: header, directory, a grain table, grains and markers, descriptor, footer. */
  regions: [string, number, number][];
}

function sparseRegions(b: Buffer): [string, number, number][] {
  let gd = Number(b.readBigUInt64LE(56));
  const regions: [string, number, number][] = [['header', 0, SECTOR]];
  if (b.readBigUInt64LE(56) === (1n << 64n) - 1n) {
    regions.push(['footer', b.length - 2 * SECTOR, SECTOR], ['footer marker', b.length - 3 * SECTOR, SECTOR]);
    gd = Number(b.readBigUInt64LE(b.length - 2 * SECTOR + 56));
  }
  regions.push(['descriptor', Number(b.readBigUInt64LE(28)) * SECTOR, 1024]);
  regions.push(['grain directory', gd * SECTOR, 64]);
  const gt = b.readUInt32LE(gd * SECTOR);
  if (gt) {
    regions.push(['grain table', gt * SECTOR, 2048]);
    const grain = b.readUInt32LE(gt * SECTOR);
    if (grain > 1) regions.push(['grain / marker', grain * SECTOR, 64]);
  }
  return regions;
}

/** One edit: which region, where in it (or which header field), and what to write there. */
const edit = fc.tuple(
  fc.nat(),
  fc.nat(),
  fc.boolean(),
  fc.oneof(
    fc.integer({ min: 0, max: 255 }).map((v) => ({ width: 1, v: BigInt(v) })),
    fc.oneof(fc.constantFrom(...U32), fc.integer({ min: 0, max: 0xffffffff })).map((v) => ({ width: 4, v: BigInt(v) })),
    fc.oneof(fc.constantFrom(...U64), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })).map((v) => ({ width: 8, v })),
  ),
);

type Edit = typeof edit extends fc.Arbitrary<infer T> ? T : never;

function apply(b: Buffer, base: Base, [region, pos, onField, value]: Edit): string {
  const [name, start, length] = base.regions[region % base.regions.length];
  const header = name === 'header' || name === 'footer';
  const at = start + (header && onField ? HEADER_FIELDS[pos % HEADER_FIELDS.length][0] : pos % length);
  if (at + value.width > b.length) return `${name}: past the end`;
  if (value.width === 8) b.writeBigUInt64LE(value.v, at);
  else if (value.width === 4) b.writeUInt32LE(Number(value.v), at);
  else b[at] = Number(value.v);
  return `${name}+${at - start} = ${value.v}`;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms).unref())]);
}

/** Everything a user can ask of an image; only VdiskErrors may come out. */
async function exercise(path: string): Promise<void> {
  await checkImage(path);
  const img = await openImage(path);
  try {
    await describeImage(img);
    let n = 0;
    await mapImage(img, () => { if (++n > 1_000_000) throw new Error('map emitted a million extents'); });
    const size = Math.min(img.virtualSize, 16 * MiB);
    const buf = Buffer.alloc(Math.min(size, MiB));
    for (let at = 0; buf.length > 0 && at + buf.length <= size; at += buf.length) await img.read(buf, at);
    await img.blockStatus(0, img.virtualSize);
  } finally {
    await img.close();
  }
}

test('mutated headers, descriptors, grain directories, tables, markers and footers end in a typed error or a readable disk, never a hang or a balloon', async (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const { dir, raw } = variedFixture(t, 8 * MiB);
  const sparse = join(dir, 'sparse.vmdk');
  qemuVmdk(raw, sparse, []);
  const stream = join(dir, 'stream.vmdk');
  assert.equal(vdisk(['convert', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, stream]).code, 0);
  const qstream = join(dir, 'qstream.vmdk');
  qemuVmdk(raw, qstream, ['subformat=streamOptimized']);
  const bases: Base[] = [sparse, stream, qstream].map((p) => {
    const bytes = readFileSync(p);
    return { name: p, bytes, regions: sparseRegions(bytes) };
  });
  // Unmutated, every base reads.
  for (const b of bases) await exercise(b.name);

  const target = join(dir, 'mutant.vmdk');
  const rssBefore = process.memoryUsage().rss;
  let errors = 0;
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(fc.nat(), fc.array(edit, { minLength: 1, maxLength: 4 }), async (which, edits) => {
      const base = bases[which % bases.length];
      const b = Buffer.from(base.bytes);
      const done = edits.map((e) => apply(b, base, e));
      writeFileSync(target, b);
      runs++;
      try {
        await withTimeout(exercise(target), 5000, done.join(', '));
      } catch (err) {
        if (!(err instanceof VdiskError)) throw new Error(`${done.join(', ')}: untyped ${(err as Error).stack}`);
        assert.equal(err.message.split('\n').length, 1, err.message);
        errors++;
      }
    }),
    { numRuns: 250, seed: 1607 },
  );
  assert.ok(errors > 20 && errors < runs, `${errors} of ${runs} mutants refused: the mutations reach the parsers, and not everything is refused`);
  assert.ok(process.memoryUsage().rss - rssBefore < 300 * MiB, 'memory stays bounded');
});

test('mutated descriptor texts: one line, a non-zero exit, no stack trace', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'disk-flat.vmdk'), Buffer.alloc(MiB, 7));
  const good = '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="monolithicFlat"\n# Extent description\nRW 2048 FLAT "disk-flat.vmdk" 0\n\n#DDB\nddb.adapterType = "ide"\n';
  const line = fc.oneof(
    fc.constantFrom(
      'RW 1099511627776 FLAT "disk-flat.vmdk" 0', // 2^40 sectors: a huge disk, no allocation
      'RW 99999999999999999999 FLAT "disk-flat.vmdk" 0',
      'RW 2048 FLAT "disk-flat.vmdk" 99999999999999999',
      'RW 2048 SPARSE "disk-flat.vmdk"', // a flat file named as a sparse extent
      'RW 2048 SPARSE "mutant.vmdk"', // the descriptor itself
      'RW 2048 FLAT "missing.vmdk" 0',
      'RW 2048 FLAT "/dev/null" 0',
      'RW 2048 WHAT "disk-flat.vmdk" 0',
      'RW 2048 FLAT',
      'RW 2048 FLAT ""',
      'NOACCESS 2048 FLAT "disk-flat.vmdk" 0',
      'RW 2048 ZERO',
      'parentFileNameHint="mutant.vmdk"', // its own parent: a loop
      'parentFileNameHint="nowhere.vmdk"',
      'parentFileNameHint=""',
      'CID=xyz',
      'parentCID=123456789',
      '\0\0\0',
      'x'.repeat(5000),
    ),
    fc.string({ maxLength: 80 }),
  );
  const target = join(dir, 'mutant.vmdk');
  await fc.assert(
    fc.asyncProperty(fc.array(line, { minLength: 1, maxLength: 4 }), async (lines) => {
      writeFileSync(target, good + lines.join('\n') + '\n');
      try {
        await withTimeout(exercise(target), 5000, lines.join(' | '));
      } catch (err) {
        if (!(err instanceof VdiskError)) throw new Error(`${lines.join(' | ')}: untyped ${(err as Error).stack}`);
      }
    }),
    { numRuns: 150, seed: 42 },
  );
  // Through the CLI: one line on stderr, a non-zero exit code, no stack trace.
  for (const bad of ['RW 2048 SPARSE "disk-flat.vmdk"', 'RW 2048 SPARSE "mutant.vmdk"', 'RW 2048 FLAT "missing.vmdk" 0', 'RW 2048 WHAT "disk-flat.vmdk" 0']) {
    writeFileSync(target, good + bad + '\n');
    const r = vdisk(['read', target, join(dir, 'out.raw')]);
    assert.notEqual(r.code, 0, bad);
    assert.equal(r.stderr.trim().split('\n').length, 1, `${bad}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
});

test('a sparse image naming itself as its parent ends in one line, not a loop', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  sh('qemu-img', ['create', '-q', '-f', 'vmdk', join(dir, 'base.vmdk'), '4M']);
  sh('qemu-img', ['create', '-q', '-f', 'vmdk', '-b', 'base.vmdk', '-F', 'vmdk', join(dir, 'child.vmdk')]);
  renameSync(join(dir, 'child.vmdk'), join(dir, 'base.vmdk'));
  const r = vdisk(['read', join(dir, 'base.vmdk'), join(dir, 'out.raw')]);
  assert.notEqual(r.code, 0);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /chain|loop/);
});

test('sizes written by someone else never size an allocation: a 2^40-sector sparse disk, a huge grain directory in a small file', async (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const img = join(dir, 'disk.vmdk');
  sh('qemu-img', ['create', '-q', '-f', 'vmdk', img, '64M']);
  const b = readFileSync(img);
  // Capacity 2^40 sectors (512 TiB) with the directory where it was: the directory would need 64 MiB.
  const huge = Buffer.from(b);
  huge.writeBigUInt64LE(1n << 40n, 12);
  writeFileSync(join(dir, 'huge.vmdk'), huge);
  const r1 = vdisk(['info', join(dir, 'huge.vmdk')]);
  assert.equal(r1.code !== 0 && r1.stderr.trim().split('\n').length, 1, r1.stderr);
  assert.match(r1.stderr, /grain directory/);
  // The largest grains, so that 2^40 sectors need a directory of only 2 MiB; still past this file's end.
  huge.writeBigUInt64LE(4096n, 20);
  writeFileSync(join(dir, 'huge2.vmdk'), huge);
  const r2 = vdisk(['info', join(dir, 'huge2.vmdk')]);
  assert.notEqual(r2.code, 0);
  // A 2^40-sector disk whose directory fits: maps and reads in bounded time and memory.
  const sized = Buffer.concat([huge, Buffer.alloc(3 * MiB)]);
  writeFileSync(join(dir, 'huge3.vmdk'), sized);
  const before = process.memoryUsage().rss;
  await withTimeout(exercise(join(dir, 'huge3.vmdk')), 20_000, '2^40 sectors').catch((err) => {
    if (!(err instanceof VdiskError)) throw err;
  });
  assert.ok(process.memoryUsage().rss - before < 200 * MiB);
});
