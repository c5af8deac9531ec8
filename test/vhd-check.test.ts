import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { needPeers, sh, tempDir, vdisk } from './helpers/peers.js';
import { MiB, qemuRead, vhdiFields } from './helpers/vhd.js';
import { resealVhd } from './helpers/vhd-mutate.js';

/** A qemu-made dynamic VHD of 8 MiB with blocks 0 and 2 stored, its bytes, and what it reads as. */
function base(dir: string): { bytes: Buffer; content: Buffer } {
  const img = join(dir, 'base.vhd');
  sh('qemu-img', ['create', '-q', '-f', 'vpc', img, '8M']);
  sh('qemu-io', ['-f', 'vpc', '-c', 'write -P 0x41 0 64k', '-c', `write -P 0x42 ${4 * MiB + 512} 1M`, img]);
  return { bytes: readFileSync(img), content: qemuRead(dir, img) };
}

function check(img: string, repair?: string): { code: number; report: Record<string, any> } {
  const r = vdisk(['check', ...(repair ? ['-r', repair] : []), '--output', 'json', img]);
  return { code: r.code, report: JSON.parse(r.stdout) };
}

const CASES: { name: string; damage: (b: Buffer) => Buffer; code: number; repair: string | null; structure: string }[] = [
  { name: 'a bad footer copy at offset 0', damage: (b) => (b[100] ^= 0xff, b), code: 2, repair: 'all', structure: 'footer copy' },
  { name: 'a footer copy that differs from the footer', damage: (b) => (b[70] ^= 1, resealVhd(b, 0, 512, 64), b), code: 2, repair: 'all', structure: 'footer copy' },
  { name: 'a lost trailing footer', damage: (b) => (b.fill(0x5a, b.length - 512), b), code: 2, repair: 'all', structure: 'footer' },
  { name: 'leaked space before the footer', damage: (b) => Buffer.concat([b.subarray(0, b.length - 512), Buffer.alloc(MiB + 4096, 7), b.subarray(b.length - 512)]), code: 3, repair: 'leaks', structure: 'data' },
  { name: 'a BAT entry past the end', damage: (b) => (b.writeUInt32BE(0x00ffffff, 1536 + 4), b), code: 2, repair: null, structure: 'BAT' },
  { name: 'a BAT entry into the header', damage: (b) => (b.writeUInt32BE(1, 1536 + 4), b), code: 2, repair: null, structure: 'BAT' },
  { name: 'two BAT entries on one block', damage: (b) => (b.writeUInt32BE(b.readUInt32BE(1536), 1536 + 4), b), code: 2, repair: null, structure: 'BAT' },
  { name: 'a dynamic header with a wrong checksum', damage: (b) => (b[512 + 40] ^= 1, b), code: 2, repair: null, structure: 'dynamic header' },
];

for (const c of CASES) {
  test(`check finds ${c.name}${c.repair ? ` and -r ${c.repair} repairs it` : ''}`, (t) => {
    if (!needPeers(t, 'qemu-img', 'qemu-io', 'vhdiinfo')) return;
    const dir = tempDir(t);
    const { bytes, content } = base(dir);
    const img = join(dir, 'bad.vhd');
    writeFileSync(img, c.damage(Buffer.from(bytes)));
    const before = readFileSync(img);
    const look = check(img);
    assert.equal(look.code, c.code, JSON.stringify(look.report));
    assert.ok(look.report.findings.some((f: { structure: string }) => f.structure === c.structure), JSON.stringify(look.report.findings));
    assert.ok(readFileSync(img).equals(before), 'check without -r changes nothing');
    if (!c.repair) {
      const r = check(img, 'all');
      assert.equal(r.code, c.code, 'nothing certain to repair: the image is left as it was');
      assert.ok(readFileSync(img).equals(before));
      return;
    }
    const fixed = check(img, c.repair);
    assert.equal(fixed.code, 0, JSON.stringify(fixed.report));
    assert.ok(fixed.report['corruptions-fixed'] + fixed.report['leaks-fixed'] >= 1);
    assert.equal(check(img).code, 0);
    // Repaired, the image is what it was to every reader.
    assert.ok(qemuRead(dir, img).equals(content), 'qemu-img reads the same disk');
    assert.equal(vhdiFields(img)['Disk type'], 'Dynamic');
    assert.equal(statSync(img).size, bytes.length, 'the file is back to its size');
  });
}

test('a truncated fixed VHD and a damaged footer are one-line errors, and check says corrupt', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const img = join(dir, 'f.vhd');
  sh('qemu-img', ['create', '-q', '-f', 'vpc', '-o', 'subformat=fixed', img, '4M']);
  const b = readFileSync(img);
  b[b.length - 512 + 60] = 9; // disk type 9
  resealVhd(b, b.length - 512, 512, 64);
  writeFileSync(img, b);
  const r = vdisk(['read', '-f', 'vpc', img]);
  assert.notEqual(r.code, 0);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /disk type/);
  assert.equal(check(img).code === 2 || vdisk(['check', '-f', 'vpc', img]).code !== 0, true);
});
