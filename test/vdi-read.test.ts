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
