import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync, readFileSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { VDISK, needPeers, tempDir, vdisk } from './helpers/peers.js';
import { parseSize, formatSize } from '../src/util/size.js';

test('sizes parse as the contract says', () => {
  assert.equal(parseSize('4096', 'x'), 4096);
  assert.equal(parseSize('64k', 'x'), 65536);
  assert.equal(parseSize('1.5G', 'x'), 1.5 * 1024 ** 3);
  assert.equal(parseSize('2T', 'x'), 2 * 1024 ** 4);
  assert.throws(() => parseSize('1.3k', 'x'), /whole number/);
  assert.throws(() => parseSize('12Q', 'x'), /not a size/);
  assert.equal(formatSize(100 * 1024 * 1024), '100 MiB');
  assert.equal(formatSize(1265664), '1.21 MiB');
});

test('usage errors are one line with exit 1; help exits 0', (t) => {
  const dir = tempDir(t);
  const bad = vdisk(['frobnicate']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^vdisk: unknown command 'frobnicate'/);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
  const missingArg = vdisk(['info']);
  assert.equal(missingArg.code, 1);
  assert.match(missingArg.stderr, /^vdisk: missing required argument 'image'/);
  const help = vdisk(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: vdisk/);
  const raw = join(dir, 'r.img');
  writeFileSync(raw, Buffer.alloc(4096, 1));
  const badOutput = vdisk(['info', '--output', 'yaml', raw]);
  assert.equal(badOutput.code, 1);
  assert.match(badOutput.stderr, /^vdisk: --output must be human or json/);
  const badSize = vdisk(['read', raw, '-', '--offset', '12Q']);
  assert.equal(badSize.code, 1);
  assert.match(badSize.stderr, /^vdisk: --offset: '12Q' is not a size/);
});

test('raw images: info like qemu-img, reads of ranges, refusals that change nothing', (t) => {
  const dir = tempDir(t);
  const raw = join(dir, 'disk.img');
  const content = Buffer.alloc(3 * 1024 * 1024);
  for (let i = 0; i < content.length; i += 4096) content[i] = (i / 4096) & 0xff;
  writeFileSync(raw, content);
  const info = JSON.parse(vdisk(['info', '--output', 'json', raw]).stdout);
  assert.equal(info.format, 'raw');
  assert.equal(info['virtual-size'], content.length);
  const part = vdisk(['read', raw, '--offset', '5000', '--length', '10k']);
  assert.equal(part.code, 0, part.stderr);
  assert.ok(part.stdoutBytes.equals(content.subarray(5000, 5000 + 10240)));
  const past = vdisk(['read', raw, '-', '--offset', '3M', '--length', '1']);
  assert.equal(past.code, 1);
  assert.match(past.stderr, /^vdisk: .*runs past the end of the virtual disk/);
  const self = vdisk(['read', raw, raw]);
  assert.equal(self.code, 1);
  assert.match(self.stderr, /OUTPUT is the image itself/);
  assert.ok(readFileSync(raw).equals(content), 'image unchanged');
  const out = join(dir, 'copy.img');
  assert.equal(vdisk(['read', raw, out]).code, 0);
  assert.ok(readFileSync(out).equals(content));
  assert.equal(statSync(out).size, content.length);
});

test('an empty raw image and a zero-length read', (t) => {
  const dir = tempDir(t);
  const raw = join(dir, 'empty.img');
  writeFileSync(raw, '');
  const r = vdisk(['read', raw, '-']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdoutBytes.length, 0);
});

test('-p on a terminal shows the verb, percentage, rate and time left; -q silences it', (t) => {
  if (!needPeers(t, 'script')) return;
  const dir = tempDir(t);
  const img = join(dir, 'p.vhdx');
  const src = join(dir, 'src.raw');
  writeFileSync(src, Buffer.alloc(8 * 1024 * 1024, 7));
  assert.equal(vdisk(['convert', '-q', '-O', 'vhdx', '-o', 'block_size=1M', src, img]).code, 0);
  // script(1) gives the command a pseudo-terminal and copies what it shows to its own stdout.
  const onTerminal = (args: string[]) =>
    spawnSync('script', ['-qec', ['node', VDISK, ...args].map((a) => `'${a}'`).join(' '), '/dev/null'], { encoding: 'utf8' });
  for (const [verb, args] of [
    ['read', ['read', '-p', img, join(dir, 'o.raw')]],
    ['write', ['write', '-p', img, src]],
    ['check', ['check', '-p', img]],
    ['convert', ['convert', '-p', '-O', 'vhdx', img, join(dir, 'c.vhdx')]],
    ['compare', ['compare', '-p', img, src]],
  ] as const) {
    const r = onTerminal([...args]);
    assert.equal(r.status, 0, `${verb}: ${r.stdout}`);
    assert.match(r.stdout, new RegExp(`${verb}: 100\\.0%`), `${verb} shows its progress`);
    if (verb !== 'check') assert.match(r.stdout, /\/s\s+0s left/, `${verb} shows a rate and the time left`);
    const quiet = onTerminal([...args.slice(0, 1), '-q', ...args.slice(1)]);
    assert.equal(quiet.status, 0);
    assert.doesNotMatch(quiet.stdout, /100\.0%/, `${verb} -q`);
  }
});

test('colour only on a terminal, never with NO_COLOR, always with FORCE_COLOR', (t) => {
  if (!needPeers(t, 'script')) return;
  const dir = tempDir(t);
  const img = join(dir, 'c.vhdx');
  assert.equal(vdisk(['create', '-q', img, '8M']).code, 0);
  const ESC = /\x1b\[[0-9;]*m/;
  const base = { ...process.env, TERM: 'xterm-256color' } as Record<string, string>;
  delete base.NO_COLOR;
  delete base.FORCE_COLOR;
  delete base.CI; // chalk assumes a CI runner's terminal has no colour
  const piped = (env: Record<string, string>) => spawnSync(process.execPath, [VDISK, 'info', img], { env: { ...base, ...env }, encoding: 'utf8' }).stdout;
  const onTerminal = (env: Record<string, string>) =>
    spawnSync('script', ['-qec', `'${process.execPath}' '${VDISK}' info '${img}'`, '/dev/null'], { env: { ...base, ...env }, encoding: 'utf8' }).stdout;
  assert.match(piped({}), /virtual size/);
  assert.doesNotMatch(piped({}), ESC, 'piped: plain');
  assert.match(onTerminal({}), ESC, 'terminal: coloured');
  assert.doesNotMatch(onTerminal({ NO_COLOR: '1' }), ESC, 'NO_COLOR on a terminal: plain');
  assert.match(piped({ FORCE_COLOR: '1' }), ESC, 'FORCE_COLOR piped: coloured');
  assert.match(piped({ FORCE_COLOR: '1', NO_COLOR: '1' }), ESC, 'FORCE_COLOR wins over NO_COLOR');
  assert.doesNotMatch(onTerminal({ FORCE_COLOR: '0' }), ESC, 'FORCE_COLOR=0: plain');
});

test('-p shows progress only on a terminal: piped, stderr stays empty', (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'p.vhdx');
  assert.equal(vdisk(['create', '-q', '-o', 'block_size=1M', img, '64M']).code, 0);
  for (const args of [['read', '-p', img, join(dir, 'o.raw')], ['check', '-p', img], ['write', '-p', img, '--offset', '1M'], ['convert', '-p', img, join(dir, 'c.raw')]]) {
    const r = vdisk(args, { input: Buffer.alloc(4096, 1) });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '', args.join(' '));
  }
});
