import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { needPeers, tempDir, vdisk, sh } from './helpers/peers.js';
import { MiB, makeKnownRaw, makeQemuVdi } from './helpers/vdi.js';

function measure(args: string[]): { required: number; 'fully-allocated': number } {
  const r = vdisk(['measure', '--output', 'json', ...args]);
  assert.equal(r.code, 0, `vdisk measure ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

test('measure -O raw (the default) prints what qemu-img measure prints, for sizes and for images', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  const sources = [
    makeKnownRaw(dir, 'known.raw', 20 * MiB + 100),
    makeQemuVdi(dir, { name: 'src', size: '24M', io: ['write -P 1 0 1m', 'write -P 2 9m 4k'] }),
  ];
  const vhdx = join(dir, 'src.vhdx');
  sh('qemu-img', ['create', '-q', '-f', 'vhdx', vhdx, '30M']);
  sources.push(vhdx);
  for (const args of [['--size', '1000'], ['--size', '0'], ['--size', '1G'], ['--size', '10T'], ['-O', 'raw', '--size', '12345'], ...sources.map((s) => [s])]) {
    for (const output of [[], ['--output', 'json']]) {
      const ours = vdisk(['measure', ...output, ...args]);
      assert.equal(ours.code, 0, ours.stderr);
      const theirs = sh('qemu-img', ['measure', ...output, ...args]);
      if (output.length) assert.deepEqual(JSON.parse(ours.stdout), JSON.parse(theirs), args.join(' '));
      else assert.equal(ours.stdout, theirs, args.join(' '));
    }
  }
});

test('measure -O vhdx and -O vdi: required holds what convert writes, fully allocated what a full disk needs', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  const full = join(dir, 'full.raw');
  writeFileSync(full, randomBytes(20 * MiB));
  const sparse = [
    makeKnownRaw(dir, 'known.raw', 40 * MiB),
    // Scattered 1 MiB blocks: in 8 MiB VHDX blocks they take more than their own size.
    makeQemuVdi(dir, { name: 'scattered', size: '64M', io: ['write -P 1 0 4k', 'write -P 2 17m 4k', 'write -P 3 40m 1m', 'write -P 4 63m 512'] }),
  ];
  const outputs: [string, string[]][] = [
    ['vhdx', []],
    ['vhdx', ['-o', 'block_size=1M']],
    ['vhdx', ['-o', 'block_size=32M,log_size=8M']],
    ['vhdx', ['-o', 'subformat=fixed']],
    ['vdi', []],
    ['vdi', ['-o', 'static=on']],
  ];
  let n = 0;
  for (const [format, opts] of outputs) {
    for (const source of [...sparse, full]) {
      const m = measure(['-O', format, ...opts, source]);
      const out = join(dir, `out-${n++}.${format}`);
      const r = vdisk(['convert', '-O', format, ...opts, source, out]);
      assert.equal(r.code, 0, r.stderr);
      const st = statSync(out);
      const what = `${format} ${opts.join(' ')} of ${source}`;
      assert.ok(m.required >= st.size, `${what}: required ${m.required} < file size ${st.size}`);
      assert.ok(m.required >= st.blocks * 512, `${what}: required ${m.required} < allocated ${st.blocks * 512}`);
      assert.ok(m['fully-allocated'] >= m.required, what);
      if (source === full) assert.equal(m.required, m['fully-allocated'], `${what}: a disk full of data needs all of it`);
      // Not grossly more than needed: at most the metadata the layout reserves (log, BAT, map) and one block.
      assert.ok(m.required - st.size <= 10 * MiB + 32 * MiB, `${what}: required ${m.required} for a file of ${st.size}`);
    }
    const empty = measure(['-O', format, ...opts, '--size', '64M']);
    const made = join(dir, `empty-${n++}.${format}`);
    assert.equal(vdisk(['create', '-q', '-f', format, ...opts, made, '64M']).code, 0);
    assert.ok(empty.required >= statSync(made).size, `${format} ${opts.join(' ')}: an empty image`);
  }
});

test('measure refuses what qemu-img measure refuses, in one line', async (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const img = join(dir, 'a.raw');
  writeFileSync(img, Buffer.alloc(4096));
  const cases: [string[], RegExp][] = [
    [[], /either --size N or one filename/],
    [['--size', '1M', img], /--size N cannot be used together with a filename/],
    [['-O', 'nope', '--size', '1M'], /unknown image format 'nope'/],
    [['-O', 'vhdx', '-o', 'colour=blue', '--size', '1M'], /-o colour: unknown option for vhdx/],
    [['--size', 'lots'], /not a size/],
    [['--output', 'xml', '--size', '1M'], /--output must be human or json/],
  ];
  for (const [args, message] of cases) {
    const r = vdisk(['measure', ...args]);
    assert.equal(r.code, 1, args.join(' '));
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  const help = vdisk(['measure', '-O', 'vdi', '-o', 'help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /static/);
});
