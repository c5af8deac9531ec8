import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { needPeers, tempDir, vdisk, sha256, sh } from './helpers/peers.js';
import { qemuConvertToRaw, qemuInfo } from './helpers/qemu.js';
import { MiB, VDI, makeKnownRaw, makeQemuVdi, qemuMap } from './helpers/vdi.js';

interface Shape {
  name: string;
  make: (dir: string) => string;
}

const SCATTERED = ['write -P 0x11 0 64k', 'write -P 0x22 1020k 8k', 'write -P 0x33 17m 3k', 'write -P 0x44 40959k 512', 'write -P 0x55 2560k 1m'];

/** Damages a QEMU image in place: returns the same path. */
function edit(path: string, fn: (b: Buffer) => void): string {
  const b = readFileSync(path);
  fn(b);
  writeFileSync(path, b);
  return path;
}

const SHAPES: Shape[] = [
  { name: 'dynamic, scattered writes', make: (d) => makeQemuVdi(d, { name: 'dyn', size: '40M', io: SCATTERED }) },
  { name: 'static, scattered writes', make: (d) => makeQemuVdi(d, { name: 'sta', size: '40M', static: true, io: SCATTERED }) },
  { name: 'empty', make: (d) => makeQemuVdi(d, { name: 'empty', size: '5M' }) },
  { name: 'not a whole number of blocks', make: (d) => makeQemuVdi(d, { name: 'odd', size: String(5 * MiB + 3 * 512), io: ['write -P 0x66 5m 1536'] }) },
  {
    name: 'qemu-img convert of a raw disk with data and holes',
    make: (d) => {
      const raw = makeKnownRaw(d, 'known.raw', 24 * MiB);
      const out = join(d, 'conv.vdi');
      sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vdi', raw, out]);
      return out;
    },
  },
  {
    // VirtualBox's "discarded" entry: reads as zeros, as QEMU reads it.
    name: 'a block marked zero (0xfffffffe)',
    make: (d) =>
      edit(makeQemuVdi(d, { name: 'zero', size: '8M', io: ['write -P 0x77 0 2m'] }), (b) => {
        b.writeUInt32LE(0xfffffffe, b.readUInt32LE(VDI.offsetBmap) + 4);
        b.writeUInt32LE(1, VDI.blocksAllocated);
      }),
  },
  {
    // 'VBoxManage convertfromraw' writes sizes that are not whole sectors; both tools round up.
    name: 'odd disk size in the header, older VirtualBox pre-header text',
    make: (d) =>
      edit(makeQemuVdi(d, { name: 'sun', size: '3M', io: ['write -P 0x21 3071k 1k'] }), (b) => {
        b.fill(0, 0, 0x40);
        b.write('<<< Sun xVM VirtualBox Disk Image >>>\n', 0, 'latin1');
        b.writeBigUInt64LE(BigInt(3 * MiB - 1000), VDI.diskSize);
      }),
  },
];

describe('VDI images written by QEMU read back as qemu-img reads them', () => {
  for (const s of SHAPES) {
    test(s.name, async (t) => {
      if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
      const dir = tempDir(t);
      const img = s.make(dir);
      const ref = join(dir, 'ref.raw');
      qemuConvertToRaw(img, ref, 'vdi');
      const out = join(dir, 'out.raw');
      const r = vdisk(['read', img, out]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await sha256(out), await sha256(ref));

      const refBytes = readFileSync(ref);
      for (const [offset, length] of [[12345, 100_000], [MiB - 777, 4096], [refBytes.length - 1000, 1000]]) {
        const rr = vdisk(['read', img, '-', '--offset', String(offset), '--length', String(length)]);
        assert.equal(rr.code, 0, rr.stderr);
        assert.ok(rr.stdoutBytes.equals(refBytes.subarray(offset, offset + length)), `range ${offset}+${length}`);
      }

      const ours = JSON.parse(vdisk(['info', '--output', 'json', img]).stdout) as Record<string, unknown>;
      const theirs = qemuInfo(img);
      for (const key of ['format', 'virtual-size', 'cluster-size', 'actual-size', 'dirty-flag']) assert.deepEqual(ours[key], theirs[key], key);

      // qemu-img asks the file system about a static image's holes (zero), which Node cannot: the
      // data runs and their offsets must agree, and for dynamic images the zero runs too.
      const isStatic = (ours['format-specific'] as { data: { type: string } }).data.type === 'static';
      const m = vdisk(['map', '--output', 'json', img]);
      assert.equal(m.code, 0, m.stderr);
      const shape = (list: Record<string, unknown>[]) =>
        mergeRuns(list.map((e) => ({ start: e.start, length: e.length, present: e.present, data: e.data, offset: e.offset, ...(isStatic ? {} : { zero: e.zero }) })));
      assert.deepEqual(shape(JSON.parse(m.stdout)), shape(qemuMap(img)));
    });
  }
});

/** Adjacent runs alike (and stored back to back) as one, so that both tools' splits compare equal. */
function mergeRuns(list: Record<string, unknown>[]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const e of list) {
    const last = out[out.length - 1];
    const same = last && Object.keys(e).every((k) => ['start', 'length', 'offset'].includes(k) || e[k] === last[k]);
    const contiguous = last && (last.offset === undefined ? e.offset === undefined : (last.offset as number) + (last.length as number) === e.offset);
    if (same && contiguous) last.length = (last.length as number) + (e.length as number);
    else out.push({ ...e });
  }
  return out;
}

test('differencing VDIs, other versions and other sector sizes are refused in one line', async (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const cases: [string, (b: Buffer) => void, RegExp][] = [
    ['diff', (b) => b.writeUInt32LE(4, VDI.imageType), /differencing/],
    ['parent', (b) => b.fill(0x42, VDI.uuidParent, VDI.uuidParent + 16), /differencing/],
    ['version', (b) => b.writeUInt32LE(0x00010000, VDI.version), /version 1\.0/],
    ['sector', (b) => b.writeUInt32LE(4096, VDI.sectorSize), /sector size 4096/],
    ['extra', (b) => b.writeUInt32LE(512, VDI.blockExtra), /extra/],
  ];
  for (const [name, damage, message] of cases) {
    const img = edit(makeQemuVdi(dir, { name, size: '4M', io: ['write -P 1 0 4k'] }), damage);
    for (const cmd of [['info', img], ['read', img, '-'], ['map', img]]) {
      const r = vdisk(cmd);
      assert.equal(r.code, 1, `${name} ${cmd[0]}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /at .*\.js/);
    }
  }
});

/**
 * A VDI laid out as VirtualBox lays one out (map at 1 MiB, data from the next MiB, its header size and
 * text), made by hand: blocks stored out of order, one discarded.
 */
function virtualBoxLayout(path: string, blockSize: number, blocks: number): Buffer {
  const offsetBmap = MiB;
  const offsetData = 2 * MiB;
  const order = [2, -1, 0, -2, 1]; // block -> slot; -1 never written, -2 discarded
  const file = Buffer.alloc(offsetData + 3 * blockSize);
  file.write('<<< Oracle VM VirtualBox Disk Image >>>\n', 0, 'latin1');
  file.writeUInt32LE(0xbeda107f, VDI.signature);
  file.writeUInt32LE(0x00010001, VDI.version);
  file.writeUInt32LE(0x190, 0x48);
  file.writeUInt32LE(1, VDI.imageType);
  file.writeUInt32LE(offsetBmap, VDI.offsetBmap);
  file.writeUInt32LE(offsetData, VDI.offsetData);
  file.writeUInt32LE(512, VDI.sectorSize);
  file.writeBigUInt64LE(BigInt(blocks * blockSize), VDI.diskSize);
  file.writeUInt32LE(blockSize, VDI.blockSize);
  file.writeUInt32LE(blocks, VDI.blocksInImage);
  file.writeUInt32LE(3, VDI.blocksAllocated);
  file.fill(0x5c, 0x188, 0x198); // image UUID
  for (let b = 0; b < blocks; b++) {
    const slot = order[b] ?? -1;
    file.writeUInt32LE(slot === -1 ? 0xffffffff : slot === -2 ? 0xfffffffe : slot, offsetBmap + b * 4);
    if (slot >= 0) file.fill(0x40 + b, offsetData + slot * blockSize + 1000, offsetData + slot * blockSize + blockSize - 1000);
  }
  writeFileSync(path, file);
  return file;
}

test('a VirtualBox-style layout reads as qemu-img reads it, and takes writes qemu-img then checks clean', async (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const img = join(dir, 'vbox.vdi');
  virtualBoxLayout(img, MiB, 5);
  const ref = join(dir, 'ref.raw');
  qemuConvertToRaw(img, ref, 'vdi');
  assert.ok(vdisk(['read', img]).stdoutBytes.equals(readFileSync(ref)));
  const m = JSON.parse(vdisk(['map', '--output', 'json', img]).stdout) as Record<string, unknown>[];
  assert.deepEqual(mergeRuns(m.map((e) => ({ ...e, depth: 0 }))), mergeRuns(qemuMap(img).map((e) => ({ ...e, depth: 0 }))));
  // The header and the map are a MiB apart: the entries are written first, then the header.
  const data = Buffer.alloc(3 * MiB, 0x77);
  assert.equal(vdisk(['write', img, '-', '--offset', String(MiB / 2)], { input: data }).code, 0);
  sh('qemu-img', ['check', '-f', 'vdi', img]);
  const want = readFileSync(ref);
  data.copy(want, MiB / 2);
  const after = join(dir, 'after.raw');
  qemuConvertToRaw(img, after, 'vdi');
  assert.ok(readFileSync(after).equals(want));
});

test('blocks of other sizes than 1 MiB (which QEMU refuses) read by their map', async (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const img = join(dir, 'big-blocks.vdi');
  const file = virtualBoxLayout(img, 2 * MiB, 5);
  const r = sh('sh', ['-c', `qemu-img info '${img}' 2>&1; true`]);
  assert.match(r, /block size 2097152 is not 1048576/);
  const got = vdisk(['read', img]).stdoutBytes;
  assert.equal(got.length, 10 * MiB);
  for (const [block, slot] of [[0, 2], [2, 0], [4, 1]]) {
    const want = file.subarray(2 * MiB + slot * 2 * MiB, 2 * MiB + (slot + 1) * 2 * MiB);
    assert.ok(got.subarray(block * 2 * MiB, (block + 1) * 2 * MiB).equals(want), `block ${block}`);
  }
  assert.ok(got.subarray(2 * MiB, 4 * MiB).equals(Buffer.alloc(2 * MiB)), 'a block never written reads as zeros');
  assert.ok(got.subarray(6 * MiB, 8 * MiB).equals(Buffer.alloc(2 * MiB)), 'a discarded block reads as zeros');
  assert.equal(JSON.parse(vdisk(['info', '--output', 'json', img]).stdout)['cluster-size'], 2 * MiB);
});
