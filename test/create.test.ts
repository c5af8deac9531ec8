import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { needPeers, tempDir, vdisk, sh } from './helpers/peers.js';
import { qemuInfo, vhdiInfo } from './helpers/qemu.js';

const MiB = 1024 * 1024;

interface Variant {
  name: string;
  size: string;
  bytes: number;
  options: string[];
  block: number;
  type: 'dynamic' | 'fixed';
  sector: number;
  /** QEMU cannot open 4K-sector VHDX; vhdiinfo is the peer for those. */
  qemu: boolean;
}

const VARIANTS: Variant[] = [
  { name: 'dynamic default', size: '100M', bytes: 100 * MiB, options: [], block: 8 * MiB, type: 'dynamic', sector: 512, qemu: true },
  { name: 'dynamic 3G default block', size: '3G', bytes: 3 * 1024 * MiB, options: [], block: 16 * MiB, type: 'dynamic', sector: 512, qemu: true },
  { name: 'fixed', size: '40M', bytes: 40 * MiB, options: ['subformat=fixed'], block: 8 * MiB, type: 'fixed', sector: 512, qemu: true },
  { name: 'block 1M log 4M', size: '64M', bytes: 64 * MiB, options: ['block_size=1M,log_size=4M'], block: MiB, type: 'dynamic', sector: 512, qemu: true },
  { name: 'block 256M', size: '1G', bytes: 1024 * MiB, options: ['block_size=256M'], block: 256 * MiB, type: 'dynamic', sector: 512, qemu: true },
  { name: 'block_state_zero', size: '50M', bytes: 50 * MiB, options: ['block_state_zero=on'], block: 8 * MiB, type: 'dynamic', sector: 512, qemu: true },
  { name: 'physical 4096', size: '50M', bytes: 50 * MiB, options: ['physical_sector_size=4096'], block: 8 * MiB, type: 'dynamic', sector: 512, qemu: true },
  { name: 'logical 4096', size: '50M', bytes: 50 * MiB, options: ['logical_sector_size=4096'], block: 8 * MiB, type: 'dynamic', sector: 4096, qemu: false },
  { name: 'fixed logical 4096', size: '24M', bytes: 24 * MiB, options: ['subformat=fixed', 'logical_sector_size=4096'], block: 8 * MiB, type: 'fixed', sector: 4096, qemu: false },
];

describe('vdisk create makes images the peers accept', () => {
  for (const v of VARIANTS) {
    test(v.name, (t) => {
      if (!needPeers(t, 'qemu-img', 'vhdiinfo')) return;
      const dir = tempDir(t);
      const img = join(dir, 'new.vhdx');
      const r = vdisk(['create', '-q', ...v.options.flatMap((o) => ['-o', o]), img, v.size]);
      assert.equal(r.code, 0, r.stderr);
      if (v.qemu) {
        sh('qemu-img', ['check', '-f', 'vhdx', img]); // throws on a non-zero exit
        const qi = qemuInfo(img);
        assert.equal(qi['virtual-size'], v.bytes);
        assert.equal(qi['cluster-size'], v.block);
        // Every byte reads as zero, to QEMU as to us.
        const zeros = join(dir, 'zeros.raw');
        sh('truncate', ['-s', String(v.bytes), zeros]);
        sh('qemu-img', ['compare', '-f', 'vhdx', '-F', 'raw', img, zeros]);
      }
      const vi = vhdiInfo(img);
      assert.match(vi['Media size'], new RegExp(`\\(${v.bytes} bytes\\)`));
      assert.equal(vi['Bytes per sector'], `${v.sector} bytes`);
      assert.equal(vi['Disk type'].toLowerCase(), v.type);
      const ours = JSON.parse(vdisk(['info', '--output', 'json', img]).stdout);
      assert.equal(ours['format-specific'].data.subformat, v.type);
      assert.equal(ours['format-specific'].data['block-size'], v.block);
      assert.match(ours['format-specific'].data.creator, /^vdisk v\d/);
      if (v.type === 'fixed') assert.equal(ours['format-specific'].data['allocated-blocks'], Math.ceil(v.bytes / v.block));
    });
  }

  test('64 TiB dynamic and 1 TiB fixed images are created at once, without writing their size', (t) => {
    if (!needPeers(t, 'qemu-img')) return;
    const dir = tempDir(t);
    for (const [name, args] of [['big.vhdx', ['64T']], ['fixed.vhdx', ['-o', 'subformat=fixed', '1T']]] as const) {
      const img = join(dir, name);
      const started = Date.now();
      const r = vdisk(['create', '-q', ...args.slice(0, -1), img, args[args.length - 1]]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(Date.now() - started < 5000, `${name} created promptly`);
      assert.ok(statSync(img).blocks * 512 < 64 * MiB, `${name} allocates little`);
      sh('qemu-img', ['check', '-f', 'vhdx', img]);
    }
  });

  test('a sparse raw image', (t) => {
    if (!needPeers(t, 'qemu-img')) return;
    const dir = tempDir(t);
    const img = join(dir, 'r.img');
    assert.equal(vdisk(['create', '-q', '-f', 'raw', img, '1G']).code, 0);
    assert.equal(statSync(img).size, 1024 * MiB);
    assert.equal(statSync(img).blocks, 0);
    assert.equal(qemuInfo(img)['virtual-size'], 1024 * MiB);
  });

  const REFUSED: [string[], RegExp][] = [
    [['-o', 'block_size=3M', 'x', '1G'], /block_size must be a power of two from 1M to 256M/],
    [['-o', 'block_size=512M', 'x', '1G'], /block_size must be a power of two/],
    [['-o', 'log_size=1536k', 'x', '1G'], /log_size must be a multiple of 1M/],
    [['-o', 'logical_sector_size=1024', 'x', '1G'], /logical_sector_size must be 512 or 4096/],
    [['-o', 'physical_sector_size=2048', 'x', '1G'], /physical_sector_size must be 512 or 4096/],
    [['-o', 'subformat=sparse', 'x', '1G'], /subformat: expected dynamic or fixed/],
    [['-o', 'colour=blue', 'x', '1G'], /-o colour: unknown option/],
    [['-o', 'block_state_zero=maybe', 'x', '1G'], /expected on or off/],
    [['x', '65T'], /over the VHDX maximum of 64 TiB/],
    [['x', '1000'], /not a multiple of the 512-byte logical sector/],
    [['-o', 'logical_sector_size=4096', 'x', '1026k'], /not a multiple of the 4096-byte logical sector/],
    [['x', 'lots'], /SIZE: 'lots' is not a size/],
    [['-f', 'raw', '-o', 'subformat=fixed', 'x', '1G'], /raw images take no options/],
  ];
  test('invalid requests are refused, naming the option, and leave no file behind', (t) => {
    const dir = tempDir(t);
    for (const [args, pattern] of REFUSED) {
      const target = join(dir, 'x');
      const r = vdisk(['create', ...args.map((a) => (a === 'x' ? target : a))]);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, /^vdisk: /);
      assert.match(r.stderr, pattern, args.join(' '));
      assert.equal(r.stderr.trim().split('\n').length, 1);
      assert.ok(!existsSync(target), `${args.join(' ')} left a file`);
    }
    const help = vdisk(['create', '-o', 'help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /block_size/);
  });
});
