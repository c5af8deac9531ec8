import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, writeSync, closeSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { VDISK, needPeers, tempDir, vdisk, sha256, sh } from './helpers/peers.js';
import { makeQemuVhdx, qemuConvertToRaw } from './helpers/qemu.js';

const MiB = 1024 * 1024;

interface Target {
  name: string;
  make: (dir: string) => string;
  size: number;
  block: number;
  /** QEMU reads the result (it cannot open 4K-sector images). */
  qemu: boolean;
}

const ours = (opts: string[], size: string) => (dir: string) => {
  const p = join(dir, 'img.vhdx');
  const r = vdisk(['create', '-q', ...opts.flatMap((o) => ['-o', o]), p, size]);
  assert.equal(r.code, 0, r.stderr);
  return p;
};

const TARGETS: Target[] = [
  { name: 'our dynamic, 1M blocks', make: ours(['block_size=1M'], '24M'), size: 24 * MiB, block: MiB, qemu: true },
  { name: 'our dynamic, default blocks, block_state_zero', make: ours(['block_state_zero=on'], '40M'), size: 40 * MiB, block: 8 * MiB, qemu: true },
  { name: 'our fixed', make: ours(['subformat=fixed'], '24M'), size: 24 * MiB, block: 8 * MiB, qemu: true },
  { name: 'our dynamic, 4K logical sectors', make: ours(['logical_sector_size=4096', 'block_size=2M'], '24M'), size: 24 * MiB, block: 2 * MiB, qemu: false },
  {
    name: 'QEMU dynamic with data',
    make: (dir) => makeQemuVhdx(dir, { name: 'q', size: '24M', options: ['block_size=1M'], io: ['write -P 0x5a 1M 1M', 'write -P 0x6b 7M 12k'] }),
    size: 24 * MiB,
    block: MiB,
    qemu: true,
  },
  {
    name: 'QEMU fixed',
    make: (dir) => makeQemuVhdx(dir, { name: 'qf', size: '24M', options: ['subformat=fixed'], io: ['write -P 0x5a 3M 1M'] }),
    size: 24 * MiB,
    block: 8 * MiB,
    qemu: true,
  },
  {
    name: 'QEMU dynamic, block_state_zero=off',
    make: (dir) => makeQemuVhdx(dir, { name: 'qz', size: '24M', options: ['block_state_zero=off'] }),
    size: 24 * MiB,
    block: 8 * MiB,
    qemu: true,
  },
];

function mirror(raw: string, data: Buffer, offset: number): void {
  const fd = openSync(raw, 'r+');
  writeSync(fd, data, 0, data.length, offset);
  closeSync(fd);
}

describe('vdisk write: the image equals a raw file that received the same writes', () => {
  for (const t0 of TARGETS) {
    test(t0.name, async (t) => {
      if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
      const dir = tempDir(t);
      const img = t0.make(dir);
      const raw = join(dir, 'mirror.raw');
      if (t0.qemu) qemuConvertToRaw(img, raw);
      else assert.equal(vdisk(['read', img, raw]).code, 0);

      const writes: [number, Buffer, 'file' | 'stdin'][] = [
        [12345, randomBytes(3000), 'file'], // unaligned, inside one sector run
        [t0.block - 1000, randomBytes(5000), 'stdin'], // crosses a block boundary
        [t0.block + 7, randomBytes(t0.block + 13), 'file'], // spans whole blocks, unaligned both ends
        [t0.size - 1, Buffer.from([0xfe]), 'stdin'], // the very last byte
        [Math.floor(t0.size / 2), Buffer.alloc(70_000), 'file'], // zeros over data and holes
        [12345 + 100, randomBytes(100), 'file'], // rewrite inside an allocated block
      ];
      for (const [offset, data, how] of writes) {
        const args = ['write', img, '--offset', String(offset)];
        let r;
        if (how === 'file') {
          const f = join(dir, 'in.bin');
          writeFileSync(f, data);
          r = vdisk([...args, f]);
        } else {
          r = vdisk(args, { input: data });
        }
        assert.equal(r.code, 0, `${offset}: ${r.stderr}`);
        mirror(raw, data, offset);
      }
      const r = vdisk(['read', img, join(dir, 'back.raw')]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await sha256(join(dir, 'back.raw')), await sha256(raw), 'vdisk reads back what was written');
      if (t0.qemu) {
        sh('qemu-img', ['compare', '-f', 'vhdx', '-F', 'raw', img, raw]);
        sh('qemu-img', ['check', '-f', 'vhdx', img]);
      }
      const info = JSON.parse(vdisk(['info', '--output', 'json', img]).stdout);
      assert.equal(info['dirty-flag'], false, 'the log is empty after a write');

      // A write past the end is refused and changes nothing.
      const before = await sha256(img);
      const past = vdisk(['write', img, '--offset', String(t0.size - 10)], { input: Buffer.alloc(11, 1) });
      assert.equal(past.code, 1);
      assert.match(past.stderr, /^vdisk: .*would run past the end of the virtual disk .*nothing was written\n$/);
      assert.equal(await sha256(img), before);
    });
  }

  test('writing zeros does not allocate blocks; a long write is committed in few log transactions', async (t) => {
    if (!needPeers(t, 'qemu-img')) return;
    const dir = tempDir(t);
    const img = join(dir, 'z.vhdx');
    assert.equal(vdisk(['create', '-q', '-o', 'block_size=1M', img, '64M']).code, 0);
    assert.equal(vdisk(['write', img], { input: Buffer.alloc(8 * MiB) }).code, 0);
    let info = JSON.parse(vdisk(['info', '--output', 'json', img]).stdout);
    assert.equal(info['format-specific'].data['allocated-blocks'], 0);
    const seqBefore = info['format-specific'].data['header-sequence'];
    assert.equal(vdisk(['write', img], { input: randomBytes(48 * MiB) }).code, 0);
    info = JSON.parse(vdisk(['info', '--output', 'json', img]).stdout);
    assert.equal(info['format-specific'].data['allocated-blocks'], 48);
    // One session: 2 header writes to start it, 4 for one log transaction.
    assert.equal(info['format-specific'].data['header-sequence'] - seqBefore, 6);
    sh('qemu-img', ['check', '-f', 'vhdx', img]);
    assert.ok(statSync(img).size <= 5 * MiB + 48 * MiB, 'blocks packed at the end of the file');
  });

  test('raw images take writes too, and refuse to grow', async (t) => {
    const dir = tempDir(t);
    const img = join(dir, 'r.img');
    assert.equal(vdisk(['create', '-q', '-f', 'raw', img, '1M']).code, 0);
    const data = randomBytes(5000);
    assert.equal(vdisk(['write', img, '--offset', '777'], { input: data }).code, 0);
    const back = vdisk(['read', img, '--offset', '777', '--length', '5000']);
    assert.ok(back.stdoutBytes.equals(data));
    assert.equal(vdisk(['write', img, '--offset', '1M'], { input: Buffer.from('x') }).code, 1);
    assert.equal(statSync(img).size, MiB);
  });

  test('stdin redirected from a file is read in place; one too long is refused before anything is written', async (t) => {
    const dir = tempDir(t);
    const img = join(dir, 'r.img');
    assert.equal(vdisk(['create', '-q', '-f', 'raw', img, '1M']).code, 0);
    const data = randomBytes(300 * 1024);
    const input = join(dir, 'in.bin');
    writeFileSync(input, data);
    const run = (offset: string) => {
      const fd = openSync(input, 'r');
      try {
        return spawnSync(process.execPath, [VDISK, 'write', img, '--offset', offset], { stdio: [fd, 'pipe', 'pipe'], encoding: 'utf8' });
      } finally {
        closeSync(fd);
      }
    };
    const ok = run('4096');
    assert.equal(ok.status, 0, ok.stderr);
    assert.ok(vdisk(['read', img, '--offset', '4096', '--length', String(data.length)]).stdoutBytes.equals(data));
    const before = await sha256(img);
    const tooLong = run(String(MiB - 1000));
    assert.equal(tooLong.status, 1);
    assert.match(tooLong.stderr, /^vdisk: .*would run past the end of the virtual disk.*nothing was written\n$/);
    assert.equal(await sha256(img), before);
  });
});
