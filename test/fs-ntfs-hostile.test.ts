import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, openSync, writeSync, ftruncateSync, closeSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import fc from 'fast-check';
import { havePeer, needPeers, sh, sha256Buffer, vdisk } from './helpers/peers.js';
import { mountNtfs, unmount, NTFS_PEERS, noiseBytes, textBytes, reparseHex } from './helpers/ntfs.js';
import { VdiskError } from '../src/errors.js';
import { Filesystem } from '../src/filesystems/filesystem.js';
import { ntfsDriver } from '../src/filesystems/ntfs/driver.js';
import { memoryVolume } from './helpers/memory.js';
import { FsGuard } from './helpers/fs-guard.js';

/**
 * Hostile NTFS volumes: one real volume (mkntfs, filled through ntfs-3g with every structure the reader
 * follows), then mutations aimed at the boot sector, MFT records, runlists, INDX blocks and compressed
 * data. Whatever the bytes, every operation ends with a result or a one-line VdiskError, in bounded time.
 */

let dir = '';
let image: Buffer;
let imagePath = '';
const regions: { name: string; start: number; end: number }[] = [];


/** Runs of a file as ntfsinfo prints them: [lcn, length] in clusters. */
function runsOf(img: string, path: string): [number, number][] {
  const text = sh('ntfsinfo', ['-v', '-F', path, img]);
  const out: [number, number][] = [];
  for (const m of text.matchAll(/^\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)$/gm)) out.push([parseInt(m[1], 16), parseInt(m[2], 16)]);
  return out;
}

before(() => {
  if (!NTFS_PEERS.every(havePeer)) return;
  dir = mkdtempSync(join(tmpdir(), 'vdisk-ntfs-hostile-'));
  imagePath = join(dir, 'hostile.img');
  sh('truncate', ['-s', String(4 * 1024 * 1024), imagePath]);
  sh('mkntfs', ['-q', '-F', '-f', '-c', '1024', '-L', 'hostile', imagePath]);
  const mnt = join(dir, 'mnt');
  mountNtfs(imagePath, mnt, 'streams_interface=windows');
  try {
    mkdirSync(join(mnt, 'packed'));
    sh('setfattr', ['-n', 'system.ntfs_attrib_be', '-v', '0x00000810', join(mnt, 'packed')]);
    writeFileSync(join(mnt, 'packed', 'text.txt'), textBytes(40_000, 1));
    mkdirSync(join(mnt, 'big'));
    for (let i = 0; i < 120; i++) writeFileSync(join(mnt, 'big', `a rather long file name ${i}`), `${i}`);
    writeFileSync(join(mnt, 'noise.bin'), noiseBytes(30_000, 2));
    const fd = openSync(join(mnt, 'sparse'), 'w');
    writeSync(fd, Buffer.from('data'), 0, 4, 200_000);
    ftruncateSync(fd, 400_000);
    closeSync(fd);
    writeFileSync(join(mnt, 'streams'), 'x');
    for (let i = 0; i < 40; i++) writeFileSync(join(mnt, `streams:s${i}`), `stream ${i} `.repeat(5));
    symlinkSync('big/a rather long file name 7', join(mnt, 'link'));
    writeFileSync(join(mnt, 'reparse'), '');
    sh('setfattr', ['-n', 'system.ntfs_reparse_data', '-v', reparseHex(0xa000000c, 'noise.bin', 'noise.bin', 1), join(mnt, 'reparse')]);
  } finally {
    unmount(mnt);
  }
  image = readFileSync(imagePath);
  regions.push({ name: 'boot sector', start: 0, end: 512 });
  // Every FILE record and INDX block by its signature; runlists inside the records; compressed clusters.
  for (let at = 0; at + 1024 <= image.length; at += 1024) {
    const magic = image.toString('latin1', at, at + 4);
    if (magic === 'FILE') {
      const used = image.readUInt32LE(at + 24);
      regions.push({ name: `MFT record at ${at}`, start: at, end: at + Math.min(used, 1024) });
      let a = image.readUInt16LE(at + 20);
      for (let n = 0; n < 64 && a + 24 < 1024; n++) {
        const type = image.readUInt32LE(at + a);
        const len = image.readUInt32LE(at + a + 4);
        if (type === 0xffffffff || len < 24 || a + len > 1024) break;
        if (image[at + a + 8] === 1) regions.push({ name: `runlist at ${at + a}`, start: at + a + image.readUInt16LE(at + a + 32), end: at + a + len });
        a += len;
      }
    }
    if (magic === 'INDX') regions.push({ name: `INDX block at ${at}`, start: at, end: at + 4096 });
  }
  for (const [lcn, len] of runsOf(imagePath, '/packed/text.txt')) regions.push({ name: 'compressed data', start: lcn * 1024, end: (lcn + len) * 1024 });
});

/** Walks everything: the tree (reading up to 1 MiB of each file and stream), links, lookups, the free map. */
async function exercise(b: Buffer): Promise<void> {
  const reader = await ntfsDriver.open(memoryVolume(b, 64 * 1024 * 1024), { name: 'hostile.img' });
  const fs = new Filesystem(reader, 'hostile.img');
  const pending = ['/'];
  let seen = 0;
  const dirs = new Set<number>([5]);
  const buf = Buffer.alloc(1024 * 1024);
  while (pending.length) {
    const d = pending.shift() as string;
    for (const e of await fs.readdir(d)) {
      assert.ok(++seen < 10_000, 'entries bounded');
      const p = d === '/' ? `/${e.name}` : `${d}/${e.name}`;
      const st = await fs.lstat(p);
      // A damaged index may name a directory twice (even an ancestor): enter each once, as vdisk's tree walker does.
      if (st.type === 'directory' && !dirs.has(st.ino)) {
        dirs.add(st.ino);
        pending.push(p);
      }
      if (st.type === 'symlink') await fs.readlink(p);
      if (st.type === 'file') {
        for (const s of [undefined, ...(st.streams ?? []).map((x) => x.name)]) {
          const f = await reader.open((await fs.resolve(p, false)).node, s);
          await f.read(buf, 0);
          if (f.size > buf.length) await f.read(buf.subarray(0, 4096), f.size - 4096);
          await f.dataRanges?.();
        }
      }
    }
  }
  await fs.stat('/BIG/A RATHER LONG FILE NAME 99').catch((e) => {
    if (!(e instanceof VdiskError)) throw e;
  });
  for await (const r of fs.freeExtents()) assert.ok(r.length > 0);
}

const outcomes = { ok: 0, failed: 0 };

/**
 * First in a worker, where a loop that never yields fails as a hang and a heap past its limit as
 * unbounded memory; then, known to end, here, for the checks only NTFS has (named streams, the long name).
 */
async function bounded(b: Buffer, guard: FsGuard): Promise<void> {
  try {
    await guard.exercise('ntfs', b, 'hostile.img', 10_000, 64 * 1024 * 1024);
  } catch (err) {
    if (!(err instanceof VdiskError)) throw err;
  }
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('took more than 10 s (a hang?)')), 10_000);
  });
  try {
    await Promise.race([exercise(b), hang]);
    outcomes.ok++;
  } catch (err) {
    if (!(err instanceof VdiskError)) {
      if (process.env.NTFS_REPLAY) console.error(err);
      throw err;
    }
    outcomes.failed++;
    assert.ok(!err.message.includes('\n'), `one line: ${err.message}`);
    assert.match(err.message, /^hostile\.img: /);
  } finally {
    clearTimeout(timer);
  }
}

test('the unmutated volume reads whole', async (t) => {
  if (!needPeers(t, ...NTFS_PEERS)) return;
  await exercise(image);
});

test('mutated boot sector, MFT records, runlists, index blocks and compressed data: a result or one line, never a hang', async (t) => {
  if (!needPeers(t, ...NTFS_PEERS)) return;
  const before = sha256Buffer(readFileSync(imagePath));
  const mutation = fc.record({
    pos: fc.nat(),
    kind: fc.constantFrom('byte', 'u16', 'u32', 'u64', 'zero8'),
    value: fc.oneof(fc.constantFrom(0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fffffff, 0xffffffff), fc.nat()),
  });
  const guard = new FsGuard();
  t.after(() => guard.close());
  const kinds = ['boot sector', 'MFT record', 'runlist', 'INDX block', 'compressed data'];
  for (const k of kinds) assert.ok(regions.some((r) => r.name.startsWith(k)), `the volume has a ${k}`);
  await fc.assert(
    // A kind of structure first (each as likely as the others), then one of its instances.
    fc.asyncProperty(fc.constantFrom(...kinds), fc.nat(), fc.array(mutation, { minLength: 1, maxLength: 4 }), async (kind, ri, muts) => {
      const of = regions.filter((x) => x.name.startsWith(kind));
      const r = of[ri % of.length];
      const b = Buffer.from(image);
      for (const m of muts) {
        const at = r.start + (m.pos % Math.max(1, r.end - r.start));
        if (m.kind === 'byte') b[at] = m.value & 0xff;
        else if (m.kind === 'u16' && at + 2 <= b.length) b.writeUInt16LE(m.value & 0xffff, at);
        else if (m.kind === 'u32' && at + 4 <= b.length) b.writeUInt32LE(m.value >>> 0, at);
        else if (m.kind === 'u64' && at + 8 <= b.length) b.writeBigUInt64LE(BigInt(m.value >>> 0) * 0x100000001n, at);
        else if (m.kind === 'zero8') b.fill(0, at, Math.min(b.length, at + 8));
      }
      await bounded(b, guard);
    }),
    { numRuns: 300, interruptAfterTimeLimit: 15_000, ...(process.env.NTFS_REPLAY ? { seed: Number(process.env.NTFS_REPLAY.split(':')[0]), path: process.env.NTFS_REPLAY.split(':')[1], endOnFailure: true } : {}) },
  );
  assert.equal(sha256Buffer(readFileSync(imagePath)), before, 'the image is never written');
  t.diagnostic(`${outcomes.ok} mutants read whole, ${outcomes.failed} refused with a one-line error`);
});

/** The MFT record of `path` in `b` (the fresh volume's $MFT is contiguous) and its attribute at type `type`. */
async function attributeOf(b: Buffer, path: string, type: number): Promise<{ rec: number; attr: number }> {
  const reader = await ntfsDriver.open(memoryVolume(b, 64 * 1024 * 1024), { name: 'hostile.img' });
  const ino = (await new Filesystem(reader, 'hostile.img').lstat(path)).ino;
  const cluster = b.readUInt16LE(11) * b[13];
  const rec = Number(b.readBigUInt64LE(48)) * cluster + ino * 1024;
  assert.equal(b.readUInt32LE(rec + 44), ino, 'record found where $MFT starts');
  let a = rec + b.readUInt16LE(rec + 20);
  while (b.readUInt32LE(a) !== type) a += b.readUInt32LE(a + 4);
  return { rec, attr: a };
}

test('a runlist pointing before the volume, and an index node reached twice, are refused by name', async (t) => {
  if (!needPeers(t, ...NTFS_PEERS)) return;
  // noise.bin's single run: make its LCN delta negative (top byte of the delta field).
  const b = Buffer.from(image);
  const { attr } = await attributeOf(b, '/noise.bin', 0x80);
  const pairs = attr + b.readUInt16LE(attr + 32);
  const header = b[pairs];
  b[pairs + (header & 0x0f) + (header >> 4)] |= 0x80;
  await assert.rejects(exercise(b), (e: unknown) => e instanceof VdiskError && /^hostile\.img: MFT record \d+: attribute 0x80 at \d+: run 0: clusters -\d+\+\d+ lie outside the volume/.test(e.message));

  // An INDX node of /big (ntfs-3g roots it in one node with children): two children naming one block.
  const c = Buffer.from(image);
  let done = false;
  for (const r of regions.filter((x) => x.name.startsWith('INDX block')) ) {
    const blk = Buffer.from(c.subarray(r.start, r.end));
    const usa = blk.readUInt16LE(4);
    for (let i = 0; i < 8; i++) blk.writeUInt16LE(blk.readUInt16LE(usa + 2 + 2 * i), (i + 1) * 512 - 2);
    let e = 24 + blk.readUInt32LE(24);
    const children: number[] = [];
    for (let i = 0; i < 200 && e + 16 <= blk.length; i++) {
      const len = blk.readUInt16LE(e + 8);
      if (blk.readUInt16LE(e + 12) & 1) children.push(e + len - 8);
      if (blk.readUInt16LE(e + 12) & 2 || len < 16) break;
      e += len;
    }
    if (children.length < 2) continue;
    // Written through the update sequence: a byte at the end of a 512-byte block lives in the array.
    const vcn = blk.subarray(children[0], children[0] + 8);
    for (let k = 0; k < 8; k++) {
      const at = children[1] + k;
      const tail = at % 512;
      c[r.start + (tail >= 510 ? usa + 2 + 2 * Math.floor(at / 512) + (tail - 510) : at)] = vcn[k];
    }
    done = true;
    break;
  }
  assert.ok(done, 'an INDX node with two children');
  await assert.rejects(exercise(c), (err: unknown) => err instanceof VdiskError && /big \(MFT record \d+\): index node at VCN \d+ is reached twice/.test(err.message));
});

test('the CLI on a damaged volume: one line and a non-zero exit, no stack trace', async (t) => {
  if (!needPeers(t, ...NTFS_PEERS)) return;
  const bad = join(dir, 'bad.img');
  const b = Buffer.from(image);
  // The root directory's index root: its index header claims entries far past the record.
  const root = regions.find((r) => r.name.startsWith('MFT record') && b.readUInt32LE(r.start + 44) === 5);
  assert.ok(root, 'record 5 found');
  let a = root.start + b.readUInt16LE(root.start + 20);
  while (b.readUInt32LE(a) !== 0x90) a += b.readUInt32LE(a + 4);
  const value = a + b.readUInt16LE(a + 20);
  b.writeUInt32LE(0x7fff0000, value + 16 + 4);
  writeFileSync(bad, b);
  const r = vdisk(['ls', '-R', bad]);
  assert.notEqual(r.code, 0);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /bad\.img: .*MFT record 5|bad\.img: \$INDEX_ROOT|bad\.img: .*entries/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});

test.after?.(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});
