import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { copyFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { needPeers, tempDir, vdisk, sh } from './helpers/peers.js';
import { qemuInfo } from './helpers/qemu.js';
import { MiB, VDI, makeKnownRaw, makeQemuVdi, qemuMap } from './helpers/vdi.js';

function ok(args: string[], input?: Buffer): string {
  const r = vdisk(args, input ? { input } : {});
  assert.equal(r.code, 0, `vdisk ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

function qemuCheck(img: string): void {
  // Throws (exit status not 0) on any corruption or leak qemu-img finds.
  sh('qemu-img', ['check', '-f', 'vdi', img]);
}

function qemuCompare(a: string, fa: string, b: string, fb: string): void {
  assert.match(sh('qemu-img', ['compare', '-f', fa, '-F', fb, a, b]), /Images are identical/);
}

test('create -f vdi (dynamic and static=on) makes images qemu-img opens, checks clean and sizes as its own', async (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  for (const [name, opts] of [['dyn.vdi', []], ['sta.vdi', ['-o', 'static=on']]] as const) {
    const ours = join(dir, name);
    ok(['create', '-q', ...opts, ours, '100M']); // the .vdi ending chooses the format
    const theirs = join(dir, `q-${name}`);
    sh('qemu-img', ['create', '-q', '-f', 'vdi', ...opts, theirs, '100M']);
    qemuCheck(ours);
    const a = qemuInfo(ours);
    const b = qemuInfo(theirs);
    assert.equal(a.format, 'vdi');
    assert.equal(a['virtual-size'], b['virtual-size']);
    assert.equal(a['cluster-size'], b['cluster-size']);
    assert.ok(statSync(ours).blocks * 512 <= 64 * 1024, 'a new image allocates next to nothing');
    const dataRuns = (img: string) => qemuMap(img).filter((e) => e.data).reduce((n, e) => n + (e.length as number), 0);
    assert.equal(dataRuns(ours), dataRuns(theirs), 'static maps every block, dynamic none');
    qemuCompare(ours, 'vdi', theirs, 'vdi');
  }
  const r = vdisk(['create', '-f', 'vdi', '-o', 'static=maybe', join(dir, 'bad.vdi'), '1M']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /-o static: expected on or off/);
  assert.throws(() => statSync(join(dir, 'bad.vdi')), 'a refused create leaves no file');
});

test('convert -O vdi of a disk with data and holes: qemu-img checks it clean and compares it identical, sparse', async (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const size = 48 * MiB + 3 * 512; // not a whole number of blocks
  const raw = makeKnownRaw(dir, 'known.raw', size);
  for (const [name, extra] of [['wb.vdi', []], ['unsafe.vdi', ['-t', 'unsafe']], ['static.vdi', ['-o', 'static=on']]] as const) {
    const out = join(dir, name);
    ok(['convert', '-f', 'raw', '-O', 'vdi', ...extra, raw, out]);
    qemuCheck(out);
    qemuCompare(raw, 'raw', out, 'vdi');
    assert.equal(qemuInfo(out)['virtual-size'], size);
    assert.ok(statSync(out).blocks * 512 <= 8 * MiB, `${name}: only data is allocated (${statSync(out).blocks * 512} bytes)`);
    // Our reading of our own output agrees with QEMU's.
    const back = join(dir, `${name}.raw`);
    ok(['convert', '-O', 'raw', out, back]);
    assert.ok(readFileSync(back).equals(readFileSync(raw)));
  }
  // Blocks only where the source has data (zeros written as data are skipped): blocks 0-3, 6-7, and
  // the last 4 KiB across blocks 47 and 48, the last one 1536 bytes long.
  const stored = qemuMap(join(dir, 'wb.vdi')).filter((e) => e.data).reduce((n, e) => n + (e.length as number), 0);
  assert.equal(stored, 7 * MiB + 3 * 512);
  // VDI to VHDX and back through vdisk, judged by qemu-img.
  const vhdx = join(dir, 'x.vhdx');
  ok(['convert', '-O', 'vhdx', join(dir, 'wb.vdi'), vhdx]);
  const again = join(dir, 'again.vdi');
  ok(['convert', '-O', 'vdi', vhdx, again]);
  qemuCheck(again);
  qemuCompare(raw, 'raw', again, 'vdi');
});

test('write into QEMU\'s VDIs (allocated and new blocks, unaligned): qemu-img sees the bytes and checks clean', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  for (const isStatic of [false, true]) {
    const img = makeQemuVdi(dir, { name: `w-${isStatic}`, size: '16M', static: isStatic, io: ['write -P 0x31 2m 1m', 'write -P 0x32 9m 4k'] });
    const expected = join(dir, 'expected.raw');
    sh('qemu-img', ['convert', '-f', 'vdi', '-O', 'raw', img, expected]);
    const data = randomBytes(3 * MiB + 777);
    const at = 2_500_000;
    ok(['write', img, '-', '--offset', String(at)], data);
    const want = readFileSync(expected);
    data.copy(want, at);
    writeFileSync(expected, want);
    qemuCheck(img);
    qemuCompare(expected, 'raw', img, 'vdi');
    // A second session appends after the first one's blocks.
    ok(['write', img, '-', '--offset', String(14 * MiB)], Buffer.alloc(4096, 0x99));
    Buffer.alloc(4096, 0x99).copy(want, 14 * MiB);
    writeFileSync(expected, want);
    qemuCheck(img);
    qemuCompare(expected, 'raw', img, 'vdi');
  }
});

test('a large sparse VDI: 1 TiB, 4 MiB block map, created, written at both ends, checked by qemu-img', async (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const img = join(dir, 'big.vdi');
  ok(['create', '-q', '-f', 'vdi', img, '1T']);
  ok(['write', img, '-', '--offset', '0'], Buffer.alloc(4096, 1));
  ok(['write', img, '-', '--offset', String(2 ** 40 - 4096)], Buffer.alloc(4096, 2));
  qemuCheck(img);
  const map = JSON.parse(ok(['map', '--output', 'json', img])) as Record<string, unknown>[];
  assert.deepEqual(map.filter((e) => e.data).map((e) => [e.start, e.length]), [[0, MiB], [2 ** 40 - MiB, MiB]]);
  assert.deepEqual(qemuMap(img).filter((e) => e.data).map((e) => [e.start, e.length]), [[0, MiB], [2 ** 40 - MiB, MiB]]);
  const tail = vdisk(['read', img, '-', '--offset', String(2 ** 40 - 4096)]).stdoutBytes;
  assert.ok(tail.equals(Buffer.alloc(4096, 2)));
});

test('check agrees with qemu-img check on damaged block maps and counts', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  const cases: [string, (b: Buffer, bmap: number) => void][] = [
    ['clean', () => undefined],
    ['entry past the blocks', (b, m) => b.writeUInt32LE(1000, m + 4 * 5)],
    ['two blocks share a slot', (b, m) => { b.writeUInt32LE(0, m + 4 * 6); b.writeUInt32LE(4, 0x184); }],
    ['count too high', (b) => b.writeUInt32LE(7, 0x184)],
    ['count too low', (b) => b.writeUInt32LE(1, 0x184)],
    ['several at once', (b, m) => { b.writeUInt32LE(999, m); b.writeUInt32LE(1, m + 8); b.writeUInt32LE(1, m + 12); }],
  ];
  for (const [name, damage] of cases) {
    const img = makeQemuVdi(dir, { name: name.replace(/ /g, '-'), size: '8M', io: ['write -P 1 0 1m', 'write -P 2 1m 1m', 'write -P 3 3m 1m'] });
    const b = readFileSync(img);
    damage(b, b.readUInt32LE(VDI.offsetBmap));
    writeFileSync(img, b);
    const q = JSON.parse(sh('sh', ['-c', `qemu-img check -f vdi --output json '${img}' 2>/dev/null; true`])) as Record<string, number>;
    const r = vdisk(['check', '--output', 'json', img]);
    const ours = JSON.parse(r.stdout) as Record<string, number>;
    assert.equal(ours.corruptions, q.corruptions ?? 0, `${name}: corruptions`);
    assert.equal(ours.leaks, q.leaks ?? 0, `${name}: leaks`);
    assert.equal(r.code, (q.corruptions ?? 0) > 0 ? 2 : 0, `${name}: exit code`);
    if (name !== 'clean') assert.ok(q.corruptions > 0, `${name}: qemu-img finds it too`);
  }
  // An entry whose block lies past the end of the file: QEMU reads zeros there and says nothing;
  // vdisk calls it a corruption and refuses to read through it.
  const cut = makeQemuVdi(dir, { name: 'cut', size: '8M', io: ['write -P 1 0 1m', 'write -P 2 5m 1m'] });
  const b = readFileSync(cut);
  writeFileSync(cut, b.subarray(0, b.length - 4096));
  const r = vdisk(['check', '--output', 'json', cut]);
  assert.equal(r.code, 2);
  assert.match(r.stdout, /past the end of the file/);
  const rr = vdisk(['read', cut, '-']);
  assert.equal(rr.code, 1);
  assert.match(rr.stderr, /past the end of the file/);
  const rep = vdisk(['check', '-r', 'all', cut]);
  assert.equal(rep.code, 1);
  assert.match(rep.stderr, /cannot repair VDI/);
});

test('a convert into more blocks than one commit batch: batches committed behind the copy, qemu-img agrees', async (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const raw = join(dir, 'many.raw');
  const blocks = 600;
  const b = Buffer.alloc(blocks * MiB);
  for (let i = 0; i < blocks; i++) b.fill(i % 251 + 1, i * MiB + 8192, i * MiB + 12288);
  writeFileSync(raw, b);
  for (const cache of ['writeback', 'unsafe']) {
    const out = join(dir, `many-${cache}.vdi`);
    ok(['convert', '-t', cache, '-O', 'vdi', raw, out]);
    qemuCheck(out);
    qemuCompare(raw, 'raw', out, 'vdi');
    assert.equal(qemuMap(out).filter((e) => e.data).reduce((n, e) => n + (e.length as number), 0), blocks * MiB);
  }
});
