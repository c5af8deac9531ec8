import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { needPeers, sh, tempDir, vdisk, sha256Buffer } from './helpers/peers.js';
import { compareTrees, diffTrees, allocatedBytes, withFs } from './helpers/fs-tree.js';
import {
  EXFAT_PEERS,
  SCRIPT_NAMES,
  dumpExfat,
  editImage,
  fillExfat,
  findEntrySet,
  fsckExfat,
  makeSourceTree,
  mkfsExfat,
  patternBytes,
  readAt,
  resealEntrySet,
  withExfatMount,
  writeAt,
} from './helpers/exfat.js';
import type { Filesystem } from '../src/filesystems/filesystem.js';
import { VdiskError } from '../src/errors.js';

const MiB = 1024 * 1024;
/** exfat-fuse writes local times with their UTC offset: a zone west of UTC with a half hour tests the sign. */
const FILL_TZ = 'America/St_Johns';

interface Fixture {
  dir: string;
  src: string;
  img: string;
  mnt: string;
}

let shared: Fixture | undefined;

/**
 * One volume for most tests: the known tree copied in through exfat-fuse, plus two files written in
 * interleaved pieces (so their clusters are fragmented and chained through the FAT) and a deleted file
 * (a hole in the allocation bitmap). Built once; tests that edit it work on copies.
 */
function fixture(): Fixture {
  if (shared) return shared;
  const dir = tempDir({ after: () => undefined }, 'vdisk-exfat-');
  process.on('exit', () => sh('rm', ['-rf', dir]));
  const src = join(dir, 'src');
  const img = join(dir, 'fs.img');
  const mnt = join(dir, 'mnt');
  makeSourceTree(src);
  const one = patternBytes(300_000, 11);
  const two = patternBytes(250_000, 12);
  mkdirSync(join(src, 'frag'), { recursive: true });
  writeSource(join(src, 'frag', 'one.bin'), one);
  writeSource(join(src, 'frag', 'two.bin'), two);
  mkfsExfat(img, 48 * MiB, { label: 'Ünï Vol' });
  fillExfat(img, src, mnt, (m) => {
    // cp -a wrote them whole (contiguous): write them again, a piece of each in turn.
    sh('rm', [join(m, 'frag', 'one.bin'), join(m, 'frag', 'two.bin')]);
    sh('sh', ['-c', `head -c 200000 /dev/zero > '${m}/gone.bin'`]);
    for (let o = 0; o < Math.max(one.length, two.length); o += 20_000) {
      appendTo(join(m, 'frag', 'one.bin'), one.subarray(o, o + 20_000));
      appendTo(join(m, 'frag', 'two.bin'), two.subarray(o, o + 20_000));
    }
    sh('rm', [join(m, 'gone.bin')]);
    sh('touch', ['-r', join(src, 'frag', 'one.bin'), join(m, 'frag', 'one.bin')]);
    sh('touch', ['-r', join(src, 'frag', 'two.bin'), join(m, 'frag', 'two.bin')]);
  }, FILL_TZ);
  shared = { dir, src, img, mnt };
  return shared;
}

/** A copy of the shared fixture, its bytes edited. */
function editedCopy(t: { after: (fn: () => void) => void }, name: string, edit: (image: Buffer) => void): { f: Fixture; img: string } {
  const f = fixture();
  const img = join(tempDir(t), name);
  copyFileSync(f.img, img);
  editImage(img, edit);
  return { f, img };
}

function writeSource(p: string, data: Buffer): void {
  sh('sh', ['-c', `cat > '${p}'`], data);
  sh('touch', ['-d', '@1690000001', p]);
}

function appendTo(p: string, data: Buffer): void {
  if (data.length) sh('sh', ['-c', `cat >> '${p}'`], data);
}


async function readAll(fs: Filesystem, path: string): Promise<Buffer> {
  const f = await fs.open(path);
  const buf = Buffer.alloc(f.size);
  let at = 0;
  while (at < buf.length) {
    const n = await f.read(buf.subarray(at, Math.min(buf.length, at + 256 * 1024)), at);
    assert.ok(n > 0);
    at += n;
  }
  return buf;
}

/** Every path of a host tree, relative, with its lstat. */
function hostTree(root: string, rel = '', out = new Map<string, Stats>()): Map<string, Stats> {
  for (const name of readdirSync(join(root, rel))) {
    const r = rel ? `${rel}/${name}` : name;
    const st = lstatSync(join(root, r)) as Stats;
    out.set(r, st);
    if (st.isDirectory()) hostTree(root, r, out);
  }
  return out;
}

/** The library's view: every path with type, size, mtime seconds, and for files the bytes' hash. */
async function volumeTree(fs: Filesystem, dir = '/', out = new Map<string, { type: string; size: number; mtime?: number; sha?: string }>()) {
  for (const e of await fs.readdir(dir)) {
    const p = dir === '/' ? `/${e.name}` : `${dir}/${e.name}`;
    const st = await fs.stat(p);
    out.set(p.slice(1), { type: st.type, size: st.size, mtime: st.mtime?.sec, ...(st.type === 'file' ? { sha: sha256Buffer(await readAll(fs, p)) } : {}) });
    if (st.type === 'directory') await volumeTree(fs, p, out);
  }
  return out;
}

function expectOneLineError(err: unknown, code: string, pattern: RegExp): true {
  assert.ok(err instanceof VdiskError, `a VdiskError, not ${String(err)}`);
  assert.equal(err.code, code, err.message);
  assert.ok(!err.message.includes('\n'), 'one line');
  assert.match(err.message, pattern);
  return true;
}

describe('exFAT reader against mkfs.exfat and exfat-fuse', () => {
  test('every file reads back as the source tree has it: bytes, size, type, mtime, names in many scripts', async (t) => {
    if (!needPeers(t, ...EXFAT_PEERS)) return;
    const f = fixture();
    assert.equal(fsckExfat(f.img).status, 0, 'fsck.exfat finds the fixture clean');
    const source = hostTree(f.src);
    await withFs(f.img, async (fs) => {
      assert.equal(fs.type, 'exfat');
      assert.deepEqual(fs.warnings, []);
      const ours = await volumeTree(fs);
      assert.deepEqual([...ours.keys()].sort(), [...source.keys()].sort());
      for (const [rel, st] of source) {
        const o = ours.get(rel)!;
        assert.equal(o.type, st.isDirectory() ? 'directory' : 'file', rel);
        if (st.isFile()) {
          assert.equal(o.size, st.size, rel);
          assert.equal(o.sha, sha256Buffer(readFileSync(join(f.src, rel))), rel);
          // Written under a zone 3:30 west of UTC: equal seconds mean the offset was applied.
          assert.equal(o.mtime, Math.floor(Number(st.mtimeMs) / 1000), `${rel} mtime`);
        }
      }
    });
  });

  test('vdisk get of the whole tree equals the source tree (diff -r, mtimes)', (t) => {
    if (!needPeers(t, ...EXFAT_PEERS)) return;
    const f = fixture();
    const out = join(tempDir(t), 'out');
    const r = vdisk(['get', f.img, '/', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.equal(diffTrees(f.src, out), '');
    assert.deepEqual(compareTrees(f.src, out, { mtimeMs: 0 }), []);
  });

  test('vdisk tar of the whole tree, unpacked by GNU tar, equals the source tree', (t) => {
    if (!needPeers(t, ...EXFAT_PEERS, 'tar')) return;
    const f = fixture();
    const dir = tempDir(t);
    const r = vdisk(['tar', f.img]);
    assert.equal(r.code, 0, r.stderr);
    const out = join(dir, 'out');
    mkdirSync(out);
    sh('tar', ['-x', '-C', out], r.stdoutBytes);
    // future.txt's 2099 mtime travels in a pax record (ustar's field stops in 2038).
    assert.deepEqual(compareTrees(f.src, out, { mtimeMs: 0 }), []);
  });

  test('vdisk ls -lR agrees with the exfat-fuse mount; modes and link counts as the Linux driver shows them', (t) => {
    if (!needPeers(t, ...EXFAT_PEERS)) return;
    const f = fixture();
    const r = vdisk(['ls', '-lR', '--output', 'json', f.img]);
    assert.equal(r.code, 0, r.stderr);
    const ours = new Map<string, Record<string, unknown>>((JSON.parse(r.stdout) as Record<string, unknown>[]).map((e) => [(e.path as string).slice(1), e]));
    const fuse = withExfatMount(f.img, f.mnt, () => hostTree(f.mnt), { readOnly: true });
    assert.deepEqual([...ours.keys()].sort(), [...fuse.keys()].sort());
    for (const [rel, st] of fuse) {
      const o = ours.get(rel)!;
      assert.equal(o.type, st.isDirectory() ? 'directory' : 'file', rel);
      assert.equal(o.size, Number(st.size), rel);
      assert.equal(Date.parse(o.mtime as string), Math.floor(Number(st.mtimeMs) / 1000) * 1000, `${rel} mtime`);
      // exfat-fuse shows 0777 and one link; the Linux driver (umask 022) 0755 and, for a directory, 2 plus its subdirectories.
      assert.equal(o.mode, '0755', rel);
      const subdirs = st.isDirectory() ? [...fuse.keys()].filter((k) => k.startsWith(`${rel}/`) && !k.slice(rel.length + 1).includes('/') && fuse.get(k)!.isDirectory()).length : -1;
      assert.equal(o.nlink, st.isDirectory() ? 2 + subdirs : 1, `${rel} nlink`);
    }
    const human = vdisk(['ls', '-l', f.img, '/frag']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^-rwxr-xr-x 1 0 0 300000 2023-07-22 04:26 one\.bin$/m);
  });

  test('fragmented files follow their FAT chains; contiguous files (NoFatChain) are read without the FAT', async (t) => {
    if (!needPeers(t, ...EXFAT_PEERS)) return;
    const f = fixture();
    await withFs(f.img, async (fs) => {
      const one = await fs.stat('/frag/one.bin');
      const big = await fs.stat('/big.bin');
      assert.ok(!one.flags?.includes('contiguous'), 'interleaved writes leave a FAT chain');
      assert.ok(big.flags?.includes('contiguous'), 'a file copied at once is contiguous');
      assert.deepEqual(await readAll(fs, '/frag/one.bin'), readFileSync(join(f.src, 'frag', 'one.bin')));
      assert.deepEqual(await readAll(fs, '/frag/two.bin'), readFileSync(join(f.src, 'frag', 'two.bin')));
    });
    // exfat-fuse leaves the FAT entries of a contiguous file free: reading it right proves the FAT was not used.
    const image = readFileSync(f.img);
    const set = findEntrySet(image, 'big.bin');
    const first = image.readUInt32LE(set + 32 + 20);
    const fatOffset = image.readUInt32LE(80) * 2 ** image[108];
    assert.equal(image.readUInt32LE(fatOffset + first * 4), 0);
  });

  test('the label and serial are those dump.exfat and blkid report', async (t) => {
    if (!needPeers(t, ...EXFAT_PEERS, 'dump.exfat', 'blkid')) return;
    const f = fixture();
    const blkidUuid = sh('blkid', ['-p', '-s', 'UUID', '-o', 'value', f.img]).trim();
    await withFs(f.img, async (fs) => {
      assert.equal(fs.reader.label, 'Ünï Vol');
      assert.equal(fs.reader.label, dumpExfat(f.img).label);
      assert.equal(fs.reader.uuid, blkidUuid);
    });
  });

  test('free extents are the clear bits of the allocation bitmap: as many as dump.exfat counts, and wiping them harms nothing', async (t) => {
    if (!needPeers(t, ...EXFAT_PEERS, 'dump.exfat')) return;
    const f = fixture();
    const dump = dumpExfat(f.img);
    const copy = join(tempDir(t), 'wiped.img');
    copyFileSync(f.img, copy);
    const ranges = await withFs(f.img, async (fs) => {
      const out: { offset: number; length: number }[] = [];
      for await (const r of fs.freeExtents()) out.push(r);
      return out;
    });
    const image = readFileSync(f.img);
    const heapEnd = image.readUInt32LE(88) * 2 ** image[108] + dump.totalClusters * dump.clusterSize;
    let prevEnd = 0;
    let freeInHeap = 0;
    for (const r of ranges) {
      assert.ok(r.offset > prevEnd, 'in order, merged, apart');
      assert.ok(r.length > 0);
      prevEnd = r.offset + r.length;
      freeInHeap += Math.max(0, Math.min(prevEnd, heapEnd) - r.offset);
    }
    assert.ok(prevEnd <= image.length);
    assert.equal(freeInHeap, dump.freeClusters * dump.clusterSize);
    assert.ok(ranges.length >= 2, 'the deleted file left a hole before the free space at the end');
    // Overwrite every free byte: the tree must still read back the same through exfat-fuse, and fsck stay clean.
    for (const r of ranges) {
      for (let o = 0; o < r.length; o += 4 * MiB) writeAt(copy, r.offset + o, Buffer.alloc(Math.min(4 * MiB, r.length - o), 0xa5));
    }
    assert.equal(fsckExfat(copy).status, 0, fsckExfat(copy).output);
    const out = join(tempDir(t), 'fuse-copy');
    withExfatMount(copy, f.mnt, () => sh('cp', ['-a', `${f.mnt}/.`, out]), { readOnly: true });
    assert.equal(diffTrees(f.src, out), '');
  });

  test('names compare through the up-case table, as exfat-fuse compares them', async (t) => {
    if (!needPeers(t, ...EXFAT_PEERS)) return;
    const f = fixture();
    const variants: string[] = [];
    for (const n of [...SCRIPT_NAMES, 'readme.txt']) {
      const mixed = [...n].map((c, i) => (i % 2 ? c.toLowerCase() : c.toUpperCase())).join('');
      variants.push(n.toUpperCase(), n.toLowerCase(), mixed);
    }
    const dirOf = (v: string) => (v.toLowerCase() === 'readme.txt' ? '' : 'scripts/');
    const fuse = withExfatMount(f.img, f.mnt, () => variants.map((v) => existsSync(join(f.mnt, dirOf(v) + v))), { readOnly: true });
    await withFs(f.img, async (fs) => {
      const ours: boolean[] = [];
      for (const v of variants) ours.push(await fs.stat(`/${dirOf(v)}${v}`).then(() => true, () => false));
      assert.deepEqual(ours, fuse);
    });
    assert.ok(fuse.filter(Boolean).length > variants.length / 2, 'most case variants exist');
    assert.ok(fuse[0] && variants[0] === 'ΕΛΛΗΝΙΚΆ ΚΕΊΜΕΝΟ.TXT', 'Greek folds');
  });

  test('a damaged or missing up-case table: a warning, and ASCII folding only', async (t) => {
    if (!needPeers(t, ...EXFAT_PEERS)) return;
    const f = fixture();
    const dir = tempDir(t);
    const image = readFileSync(f.img);
    const sector = 2 ** image[108];
    const cluster = sector * 2 ** image[109];
    const root = image.readUInt32LE(88) * sector + (image.readUInt32LE(96) - 2) * cluster;
    let upcase = -1;
    for (let o = root; o < root + cluster; o += 32) if (image[o] === 0x82) upcase = o;
    assert.ok(upcase > 0, 'mkfs.exfat wrote an up-case table entry in the root');
    const tableAt = image.readUInt32LE(88) * sector + (image.readUInt32LE(upcase + 20) - 2) * cluster;

    const damaged = join(dir, 'damaged.img');
    copyFileSync(f.img, damaged);
    editImage(damaged, (b) => { b[tableAt + 100] ^= 0x01; });
    const missing = join(dir, 'missing.img');
    copyFileSync(f.img, missing);
    editImage(missing, (b) => { b[upcase] &= 0x7f; });
    for (const [img, warning] of [[damaged, /up-case table checksum .* does not match/], [missing, /no up-case table entry/]] as const) {
      await withFs(img, async (fs) => {
        assert.ok(fs.warnings.some((w) => warning.test(w) && /ASCII case folding/.test(w)), fs.warnings.join('\n'));
        assert.equal((await fs.stat('/README.TXT')).size, 13);
        assert.equal((await fs.stat('/scripts/Ελληνικά κείμενο.TXT')).type, 'file');
        await assert.rejects(fs.stat('/scripts/ΕΛΛΗΝΙΚΆ ΚΕΊΜΕΝΟ.TXT'), (e) => expectOneLineError(e, 'NOT_FOUND', /no such file/));
      });
    }
  });

  test('bytes past the valid-data length read as zeros, and vdisk get keeps them sparse', async (t) => {
    if (!needPeers(t, ...EXFAT_PEERS)) return;
    const f = fixture();
    const dir = tempDir(t);
    const img = join(dir, 'vdl.img');
    copyFileSync(f.img, img);
    const valid = 100_003;
    editImage(img, (b) => {
      const set = findEntrySet(b, 'big.bin');
      b.writeBigUInt64LE(BigInt(valid), set + 32 + 8);
      resealEntrySet(b, set);
    });
    assert.equal(fsckExfat(img).status, 0, `fsck.exfat accepts the edit: ${fsckExfat(img).output}`);
    const source = readFileSync(join(f.src, 'big.bin'));
    const expected = Buffer.concat([source.subarray(0, valid), Buffer.alloc(source.length - valid)]);
    await withFs(img, async (fs) => {
      assert.deepEqual(await readAll(fs, '/big.bin'), expected);
      const file = await fs.open('/big.bin');
      assert.deepEqual(await file.dataRanges!(), [{ offset: 0, length: valid }]);
      // A read straddling the valid length, and one wholly past it.
      const b = Buffer.alloc(10, 0xff);
      assert.equal(await file.read(b, valid - 5), 10);
      assert.deepEqual(b, expected.subarray(valid - 5, valid + 5));
      assert.equal(await file.read(b.fill(0xff), 1_000_000), 10);
      assert.deepEqual(b, Buffer.alloc(10));
    });
    const out = join(dir, 'big.bin');
    const r = vdisk(['get', img, '/big.bin', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readFileSync(out), expected);
    assert.ok(allocatedBytes(out) < source.length - 1_000_000, `sparse copy: ${allocatedBytes(out)} bytes allocated`);
  });

  test('times: the UTC offset is applied; without OffsetValid the local time is taken as UTC; 10 ms increments', async (t) => {
    if (!needPeers(t, ...EXFAT_PEERS)) return;
    const f = fixture();
    const img = join(tempDir(t), 'times.img');
    copyFileSync(f.img, img);
    const sourceSec = Math.floor(lstatSync(join(f.src, 'readme.txt')).mtimeMs / 1000);
    const image = readFileSync(img);
    const set = findEntrySet(image, 'readme.txt');
    // exfat-fuse stored St John's time with its offset: OffsetValid set, 10 or 14 quarter hours west (7-bit two's complement).
    assert.equal(image[set + 23] & 0xc0, 0xc0);
    const quarters = (image[set + 23] & 0x7f) - 0x80;
    assert.ok(quarters === -14 || quarters === -10, `offset ${quarters}`);
    editImage(img, (b) => {
      b[set + 23] &= 0x7f; // LastModifiedUtcOffset: OffsetValid cleared
      b[set + 21] = 155; // LastModified10msIncrement: 1.55 s
      resealEntrySet(b, set);
    });
    assert.equal(fsckExfat(img).status, 0, fsckExfat(img).output);
    await withFs(img, async (fs) => {
      const st = await fs.stat('/readme.txt');
      // The stored local time is behind UTC; read as UTC it is that much early. The source second is odd,
      // so exfat-fuse had stored 100 (1 s) in the increment: 155 is 0.55 s more.
      assert.deepEqual(st.mtime, { sec: sourceSec + quarters * 900, nsec: 550_000_000 });
    });
  });

  test('the read-only attribute drops the write bits of files, not of directories, as the Linux driver', async (t) => {
    if (!needPeers(t, ...EXFAT_PEERS)) return;
    const { img } = editedCopy(t, 'ro.img', (b) => {
      for (const name of ['readme.txt', 'scripts']) {
        const set = findEntrySet(b, name);
        b.writeUInt16LE(b.readUInt16LE(set + 4) | 0x01 | 0x02, set + 4);
        resealEntrySet(b, set);
      }
    });
    assert.equal(fsckExfat(img).status, 0, fsckExfat(img).output);
    await withFs(img, async (fs) => {
      const file = await fs.stat('/readme.txt');
      const dir = await fs.stat('/scripts');
      assert.equal(file.mode, 0o100555);
      assert.equal(dir.mode, 0o040755);
      assert.deepEqual(file.flags, ['readonly', 'hidden', 'contiguous']);
    });
  });

  test('a set checksum mismatch is a warning naming the file; the file stays readable', async (t) => {
    if (!needPeers(t, ...EXFAT_PEERS)) return;
    const { f, img } = editedCopy(t, 'sum.img', (b) => { b[findEntrySet(b, 'old.txt') + 2] ^= 0xff; });
    assert.notEqual(fsckExfat(img).status, 0, 'fsck.exfat sees the mismatch too');
    await withFs(img, async (fs) => {
      assert.deepEqual(await readAll(fs, '/old.txt'), readFileSync(join(f.src, 'old.txt')));
      assert.ok(fs.warnings.some((w) => /root directory: old\.txt: entry set checksum mismatch/.test(w)), fs.warnings.join('\n'));
    });
  });

  test('an entry set with SecondaryCount past 18, or with its name cut short, is skipped with a warning', async (t) => {
    if (!needPeers(t, ...EXFAT_PEERS)) return;
    const { img } = editedCopy(t, 'count.img', (b) => {
      const old = findEntrySet(b, 'old.txt');
      b[old + 1] = 19;
      resealEntrySet(b, old);
      const readme = findEntrySet(b, 'readme.txt');
      b[readme + 32 + 3] = 16; // NameLength 16 needs a second File Name entry the set does not have
      resealEntrySet(b, readme);
    });
    assert.notEqual(fsckExfat(img).status, 0, 'fsck.exfat objects too');
    await withFs(img, async (fs) => {
      const names = (await fs.readdir('/')).map((e) => e.name);
      assert.ok(!names.includes('old.txt') && !names.includes('readme.txt'), names.join(', '));
      assert.ok(names.includes('future.txt') && names.includes('big.bin'), 'the entries after them are read');
      assert.ok(fs.warnings.some((w) => /^exfat root directory: entry set at offset \d+: SecondaryCount 19 is not in 2-18; skipped$/.test(w)), fs.warnings.join('\n'));
      assert.ok(fs.warnings.some((w) => /^exfat root directory: entry set at offset \d+: NameLength 16 needs 2 File Name entries but the set has 1; skipped$/.test(w)), fs.warnings.join('\n'));
    });
  });

  test('a loop in a FAT chain is one line of error, never a hang; fsck.exfat finds it too', async (t) => {
    if (!needPeers(t, ...EXFAT_PEERS)) return;
    const { f, img } = editedCopy(t, 'loop.img', (b) => {
      const fatOffset = b.readUInt32LE(80) * 2 ** b[108];
      const set = findEntrySet(b, 'one.bin');
      const first = b.readUInt32LE(set + 32 + 20);
      // Follow the chain to its third cluster and point it back at the first.
      const second = b.readUInt32LE(fatOffset + first * 4);
      const third = b.readUInt32LE(fatOffset + second * 4);
      b.writeUInt32LE(first, fatOffset + third * 4);
    });
    assert.notEqual(fsckExfat(img).status, 0);
    await withFs(img, async (fs) => {
      // Even the first cluster, which lies before the loop, is not handed out from a chain that loops.
      const file = await fs.open('/frag/one.bin');
      await assert.rejects(file.read(Buffer.alloc(4096), 0), (e) => expectOneLineError(e, 'CORRUPT', /loop\.img: exfat \/frag\/one\.bin: cluster chain loops/));
      await assert.rejects(readAll(fs, '/frag/one.bin'), (e) => expectOneLineError(e, 'CORRUPT', /loop\.img: exfat \/frag\/one\.bin: cluster chain loops/));
      // The rest of the volume is unharmed.
      assert.deepEqual(await readAll(fs, '/frag/two.bin'), readFileSync(join(f.src, 'frag', 'two.bin')));
    });
    const r = vdisk(['cat', img, '/frag/one.bin']);
    assert.equal(r.code, 1);
    assert.equal(r.stdoutBytes.length, 0, 'the chain is checked before any byte of it goes out');
    assert.match(r.stderr, /^vdisk: .*loop\.img: exfat \/frag\/one\.bin: cluster chain loops.*\n$/);
  });

  test('a chain longer than the size is a warning; one shorter, or through a free cluster, is an error', async (t) => {
    if (!needPeers(t, ...EXFAT_PEERS)) return;
    const f = fixture();
    const dir = tempDir(t);
    const image = readFileSync(f.img);
    const fatOffset = image.readUInt32LE(80) * 2 ** image[108];
    const chainOf = (name: string) => {
      const out = [image.readUInt32LE(findEntrySet(image, name) + 32 + 20)];
      for (let c = out[0]; image.readUInt32LE(fatOffset + c * 4) !== 0xffffffff; ) out.push((c = image.readUInt32LE(fatOffset + c * 4)));
      return out;
    };
    const one = chainOf('one.bin');
    // A free cluster (past everything the volume uses) appended to one.bin's chain.
    const free = image.readUInt32LE(92) - 10;
    const longer = join(dir, 'longer.img');
    copyFileSync(f.img, longer);
    editImage(longer, (b) => {
      b.writeUInt32LE(free, fatOffset + one[one.length - 1] * 4);
      b.writeUInt32LE(0xffffffff, fatOffset + free * 4);
    });
    await withFs(longer, async (fs) => {
      assert.deepEqual(await readAll(fs, '/frag/one.bin'), readFileSync(join(f.src, 'frag', 'one.bin')));
      assert.ok(fs.warnings.some((w) => w === `exfat /frag/one.bin: the cluster chain continues past the ${one.length} clusters its size needs`), fs.warnings.join('\n'));
    });
    const shorter = join(dir, 'shorter.img');
    copyFileSync(f.img, shorter);
    editImage(shorter, (b) => b.writeUInt32LE(0xffffffff, fatOffset + one[10] * 4));
    const cut = join(dir, 'cut.img');
    copyFileSync(f.img, cut);
    editImage(cut, (b) => b.writeUInt32LE(free, fatOffset + one[10] * 4));
    for (const [img, why] of [[shorter, `cluster chain ends after 11 clusters but the size needs ${one.length}`], [cut, `cluster chain reaches a free cluster after cluster ${free}`]]) {
      assert.notEqual(fsckExfat(img).status, 0, 'fsck.exfat finds it too');
      await withFs(img, async (fs) => {
        await assert.rejects(readAll(fs, '/frag/one.bin'), (e) => expectOneLineError(e, 'CORRUPT', new RegExp(`: exfat /frag/one\\.bin: ${why}$`)));
      });
    }
  });

  test('a volume marked dirty opens with a warning', async (t) => {
    if (!needPeers(t, ...EXFAT_PEERS)) return;
    const f = fixture();
    const img = join(tempDir(t), 'dirty.img');
    copyFileSync(f.img, img);
    // VolumeFlags is left out of the boot checksum (3.4.1): setting VolumeDirty needs no reseal.
    editImage(img, (b) => { b[106] |= 0x02; });
    await withFs(img, async (fs) => {
      assert.deepEqual(fs.warnings, ['exfat: the volume is marked dirty (it was not cleanly unmounted); reading it as it is']);
      assert.equal((await fs.stat('/big.bin')).size, 1_536_123);
    });
  });

  test('a 1 TiB volume from mkfs.exfat: the free space streams in one range, as dump.exfat counts it', async (t) => {
    if (!needPeers(t, ...EXFAT_PEERS, 'dump.exfat')) return;
    const img = join(tempDir(t), 'huge.img');
    mkfsExfat(img, 1024 ** 4, { label: 'HUGE' });
    const dump = dumpExfat(img);
    const image = readAt(img, 0, 512);
    const heapEnd = image.readUInt32LE(88) * 512 + dump.totalClusters * dump.clusterSize;
    const rss = process.memoryUsage().rss;
    await withFs(img, async (fs) => {
      assert.equal(fs.reader.label, 'HUGE');
      let inHeap = 0;
      let ranges = 0;
      for await (const r of fs.freeExtents()) {
        ranges++;
        inHeap += Math.max(0, Math.min(r.offset + r.length, heapEnd) - r.offset);
      }
      assert.equal(inHeap, dump.freeClusters * dump.clusterSize);
      assert.equal(ranges, 1);
    });
    assert.ok(process.memoryUsage().rss - rss < 64 * MiB, 'memory stays bounded');
  });

  test('a damaged main boot region gives way to the backup; a broken layout in both is refused in one line', async (t) => {
    if (!needPeers(t, ...EXFAT_PEERS)) return;
    const f = fixture();
    const dir = tempDir(t);
    const img = join(dir, 'boot.img');
    copyFileSync(f.img, img);
    writeAt(img, 512 + 100, Buffer.from([0x42])); // an extended boot sector: only the checksum notices
    await withFs(img, async (fs) => {
      assert.ok(fs.warnings.some((w) => /main boot region: the boot checksum .* using the backup boot region/.test(w)), fs.warnings.join('\n'));
      assert.equal((await fs.stat('/big.bin')).size, 1_536_123);
    });
    writeAt(img, 12 * 512 + 512 + 100, Buffer.from([0x42]));
    await withFs(img, async (fs) => {
      assert.ok(fs.warnings.some((w) => /boot region: the boot checksum .* backup region is no better; reading on/.test(w)), fs.warnings.join('\n'));
    });
    // FatOffset inside the boot regions, in the main and the backup boot sector.
    writeAt(img, 80, Buffer.from([1, 0, 0, 0]));
    writeAt(img, 12 * 512 + 80, Buffer.from([1, 0, 0, 0]));
    const r = vdisk(['ls', img]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^vdisk: .*boot\.img: exfat boot sector: FatOffset 1 lies inside the boot regions\n$/);
    const hdr = readAt(img, 0, 11);
    assert.equal(hdr.toString('latin1', 3), 'EXFAT   ');
  });

  test('inside a GPT partition of a VHDX made by qemu-img', async (t) => {
    if (!needPeers(t, ...EXFAT_PEERS, 'sfdisk', 'qemu-img')) return;
    const f = fixture();
    const dir = tempDir(t);
    const raw = join(dir, 'disk.raw');
    const vhdx = join(dir, 'disk.vhdx');
    const fsSize = lstatSync(f.img).size;
    sh('truncate', ['-s', String(fsSize + 4 * MiB), raw]);
    sh('sfdisk', ['-q', raw], Buffer.from(`label: gpt\nstart=2048, size=${fsSize / 512}, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n`));
    sh('dd', [`if=${f.img}`, `of=${raw}`, 'bs=1M', 'seek=1', 'conv=notrunc,sparse', 'status=none']);
    sh('qemu-img', ['convert', '-O', 'vhdx', raw, vhdx]);
    await withFs(vhdx, async (fs) => {
      assert.equal(fs.name, `${vhdx} partition 1`);
      const ours = await volumeTree(fs);
      assert.equal(ours.get('big.bin')!.sha, sha256Buffer(readFileSync(join(f.src, 'big.bin'))));
      assert.equal(ours.size, hostTree(f.src).size);
    });
    const out = join(dir, 'out');
    const r = vdisk(['get', '-P', '1', vhdx, '/', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(compareTrees(f.src, out, { mtimeMs: 0 }), []);
    const ls = vdisk(['ls', '-l', vhdx, '/scripts']);
    assert.equal(ls.code, 0, ls.stderr);
    assert.equal(ls.stdout.trim().split('\n').length, SCRIPT_NAMES.length);
  });

  test('4 KiB sectors and 512-byte clusters: the shifts at their ends of the range', async (t) => {
    if (!needPeers(t, ...EXFAT_PEERS)) return;
    const dir = tempDir(t);
    const src = join(dir, 'src');
    mkdirSync(join(src, 'd'), { recursive: true });
    writeSource(join(src, 'd', 'data.bin'), patternBytes(700_001, 3));
    writeSource(join(src, 'small'), Buffer.from('x'));
    for (const [name, sectorSize, clusterSize] of [['4k', 4096, 4096], ['512', 512, 512], ['big', 512, 1024 * 1024]] as const) {
      const img = join(dir, `${name}.img`);
      sh('truncate', ['-s', String(32 * MiB), img]);
      const dev = sh('losetup', ['-f', '--show', '--sector-size', String(sectorSize), img]).trim();
      try {
        sh('mkfs.exfat', ['-c', String(clusterSize), dev]);
      } finally {
        sh('losetup', ['-d', dev]);
      }
      assert.equal(readAt(img, 108, 1)[0], Math.log2(sectorSize));
      fillExfat(img, src, join(dir, 'mnt'));
      const out = join(dir, `out-${name}`);
      const r = vdisk(['get', img, '/', out]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(compareTrees(src, out, { mtimeMs: 0 }), [], name);
    }
  });
});
