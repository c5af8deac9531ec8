import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, lstatSync, openSync, readFileSync, readSync, readdirSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { needPeers, tempDir, vdisk, sh, sha256, VDISK } from './helpers/peers.js';
import { makeQemuVhdx, qemuConvertToRaw, scatteredWrites } from './helpers/qemu.js';
import { holdVdisk, waitFor } from './helpers/locks.js';
import { makeDifferencing } from './helpers/differencing.js';

const MiB = 1024 * 1024;

/** A node's identity: kind, device numbers and inode, so that "left alone" means the same node. */
function nodeId(path: string): string {
  const st = lstatSync(path);
  return `${st.mode}:${st.rdev}:${st.ino}`;
}

function readDevice(path: string, offset: number, length: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(length);
    let done = 0;
    while (done < length) done += readSync(fd, b, done, length - done, offset + done);
    return b;
  } finally {
    closeSync(fd);
  }
}

function writeDevice(path: string, data: Buffer): void {
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, data, 0, data.length, 0);
  } finally {
    closeSync(fd);
  }
}

/** A loop block device over a file of `size` random bytes, detached after the test. */
function loopDevice(t: { after: (fn: () => void) => void }, dir: string, name: string, size: number): string {
  const backing = join(dir, `${name}.backing`);
  writeFileSync(backing, randomBytes(size));
  const dev = sh('losetup', ['-f', '--show', backing]).trim();
  t.after(() => void spawnSync('losetup', ['-d', dev]));
  return dev;
}

function noTemporaries(dir: string, what: string): void {
  assert.deepEqual(readdirSync(dir).filter((n) => n.endsWith('.tmp')), [], `${what}: no temporary file left`);
}

test('create onto a FIFO, a character node or a block device refuses and leaves it alone; convert -O vhdx too', async (t) => {
  if (!needPeers(t, 'mknod', 'mkfifo', 'losetup')) return;
  const dir = tempDir(t);
  const fifo = join(dir, 'fifo');
  sh('mkfifo', [fifo]);
  const chr = join(dir, 'null-copy');
  sh('mknod', [chr, 'c', '1', '3']); // /dev/null's numbers
  const blk = loopDevice(t, dir, 'blk', 4 * MiB);
  const blkBefore = readDevice(blk, 0, 4 * MiB);
  const src = join(dir, 'src.raw');
  writeFileSync(src, randomBytes(MiB));
  const link = join(dir, 'link-to-fifo');
  symlinkSync(fifo, link);
  for (const [node, kind] of [[fifo, 'a FIFO'], [chr, 'a character device'], [blk, 'a block device'], ['/dev/null', 'a character device'], [link, 'a FIFO']]) {
    const id = nodeId(node);
    for (const args of [['create', node, '4M'], ['create', '-f', 'raw', node, '4M'], ['convert', '-O', 'vhdx', src, node]]) {
      const r = vdisk(args);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^vdisk: ${node}: is ${kind};`), args.join(' '));
      assert.equal(r.stderr.trim().split('\n').length, 1);
      assert.equal(nodeId(node), id, `${args.join(' ')}: the node is still there, unchanged`);
    }
  }
  assert.ok(readDevice(blk, 0, 4 * MiB).equals(blkBefore), 'the block device was not written');
  noTemporaries(dir, 'refused creates');
});

test('read and convert -O raw into /dev/null, a character node, a FIFO, /dev/stdout and a block device write there in place', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io', 'mknod', 'mkfifo', 'losetup')) return;
  const dir = tempDir(t);
  const img = makeQemuVhdx(dir, { name: 'src', size: '8M', options: ['block_size=1M'], io: scatteredWrites(8 * MiB, MiB) });
  const ref = join(dir, 'ref.raw');
  qemuConvertToRaw(img, ref);
  const want = readFileSync(ref);
  const chr = join(dir, 'null-copy');
  sh('mknod', [chr, 'c', '1', '3']);
  const fifo = join(dir, 'fifo');
  sh('mkfifo', [fifo]);
  const blk = loopDevice(t, dir, 'blk', 12 * MiB);
  for (const cmd of [['read', img], ['convert', '-O', 'raw', img], ['convert', img]]) {
    const what = cmd.join(' ');
    for (const node of ['/dev/null', chr]) {
      const id = nodeId(node);
      const r = vdisk([...cmd, node]);
      assert.equal(r.code, 0, `${what} ${node}: ${r.stderr}`);
      assert.equal(nodeId(node), id, `${what} ${node}: still the same node`);
    }
    const out = vdisk([...cmd, '/dev/stdout']);
    assert.equal(out.code, 0, out.stderr);
    assert.ok(out.stdoutBytes.equals(want), `${what} /dev/stdout: the disk's bytes`);

    const id = nodeId(fifo);
    const writer = holdVdisk([...cmd, fifo]);
    const drained = spawnSync('cat', [fifo], { maxBuffer: 64 * MiB });
    assert.equal((await writer.finish()).code, 0, `${what} into a FIFO`);
    assert.ok(drained.stdout.equals(want), `${what} FIFO: the disk's bytes, in order`);
    assert.equal(nodeId(fifo), id);

    // A device larger than the disk: the disk's bytes at its start, zeros included, the rest as it was.
    const before = randomBytes(12 * MiB);
    writeDevice(blk, before);
    const blkId = nodeId(blk);
    const r = vdisk([...cmd, blk]);
    assert.equal(r.code, 0, `${what} ${blk}: ${r.stderr}`);
    assert.ok(readDevice(blk, 0, 8 * MiB).equals(want), `${what} ${blk}: the disk's bytes in place`);
    assert.ok(readDevice(blk, 8 * MiB, 4 * MiB).equals(before.subarray(8 * MiB)), `${what} ${blk}: not truncated, the tail untouched`);
    assert.equal(nodeId(blk), blkId);
  }
  // A device smaller than the disk is refused before anything is written.
  const small = loopDevice(t, dir, 'small', 4 * MiB);
  const smallBefore = readDevice(small, 0, 4 * MiB);
  for (const cmd of [['read', img], ['convert', '-O', 'raw', img]]) {
    const r = vdisk([...cmd, small]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /the device holds 4194304 bytes, fewer than the 8388608 to write; nothing was written\n$/);
  }
  assert.ok(readDevice(small, 0, 4 * MiB).equals(smallBefore));
  noTemporaries(dir, 'device outputs');
});

test('an output that is the source or one of its parents is refused, and nothing is deleted', async (t) => {
  const dir = tempDir(t);
  const base = join(dir, 'base.vhdx');
  assert.equal(vdisk(['create', '-q', '-o', 'block_size=1M', base, '8M']).code, 0);
  assert.equal(vdisk(['write', base], { input: randomBytes(8 * MiB) }).code, 0);
  const baseGuid = JSON.parse(vdisk(['info', '--output', 'json', base]).stdout)['format-specific'].data['data-write-guid'];
  const plain = join(dir, 'plain.vhdx');
  assert.equal(vdisk(['create', '-q', '-o', 'block_size=1M', plain, '8M']).code, 0);
  const child = join(dir, 'child.vhdx');
  makeDifferencing(plain, child, { parent_linkage: `{${baseGuid}}`, relative_path: '.\\base.vhdx' });
  const grandchild = join(dir, 'grandchild.vhdx');
  makeDifferencing(plain, grandchild, {
    parent_linkage: `{${JSON.parse(vdisk(['info', '--output', 'json', child]).stdout)['format-specific'].data['data-write-guid']}}`,
    relative_path: '.\\child.vhdx',
  });
  assert.equal(vdisk(['read', grandchild, join(dir, 'ok.raw')]).code, 0, 'the chain reads');
  const linkToBase = join(dir, 'link.vhdx');
  symlinkSync(base, linkToBase);
  const hashes = { base: await sha256(base), child: await sha256(child), grandchild: await sha256(grandchild) };
  const cases: [string[], RegExp][] = [
    [['convert', '-O', 'raw', child, base], /base\.vhdx: OUTPUT is .*base\.vhdx, the parent of .*child\.vhdx; refusing to overwrite it/],
    [['convert', '-O', 'vhdx', child, base], /OUTPUT is .*base\.vhdx, the parent of/],
    [['convert', '-O', 'raw', grandchild, base], /OUTPUT is .*base\.vhdx, an ancestor of .*grandchild\.vhdx/],
    [['convert', '-O', 'vhdx', grandchild, child], /OUTPUT is .*child\.vhdx, the parent of/],
    [['convert', '-O', 'raw', child, linkToBase], /OUTPUT is .*base\.vhdx, the parent of/],
    [['read', child, base], /OUTPUT is .*base\.vhdx, the parent of/],
    [['convert', child, child], /OUTPUT is the image itself/],
  ];
  for (const [args, message] of cases) {
    const r = vdisk(args);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1);
  }
  assert.deepEqual({ base: await sha256(base), child: await sha256(child), grandchild: await sha256(grandchild) }, hashes, 'every image of the chain as it was');
  noTemporaries(dir, 'refused chain outputs');
});

function convertRun(args: string[]) {
  const child = spawn(process.execPath, [VDISK, 'convert', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  return { child, closed, stderr: () => stderr };
}

test('convert killed at random points leaves OUTPUT absent, as it was, or complete; SIGINT and SIGTERM remove the temporary', async (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const src = join(dir, 'src.raw');
  writeFileSync(src, randomBytes(16 * MiB));
  const other = join(dir, 'other.raw');
  writeFileSync(other, randomBytes(4 * MiB));
  // The kills are spread over the time from the first file the run makes to its end.
  const appeared = (name: string) => () => readdirSync(dir).some((n) => n === name || n.startsWith(`.${name}.vdisk-`));
  const whole = convertRun(['-O', 'vhdx', '-o', 'block_size=1M', src, join(dir, 'timing.vhdx')]);
  await waitFor('the first file', appeared('timing.vhdx'));
  const started = Date.now();
  assert.equal((await whole.closed).code, 0, whole.stderr());
  const span = Math.max(50, Date.now() - started);
  const complete = (out: string) =>
    spawnSync('qemu-img', ['compare', '-f', 'raw', '-F', 'vhdx', src, out], { encoding: 'utf8' }).status === 0;
  let cut = 0;
  for (let run = 0; run < 8; run++) {
    const out = join(dir, `out${run}.vhdx`);
    const existed = run % 2 === 1;
    if (existed) assert.equal(vdisk(['convert', '-O', 'vhdx', other, out]).code, 0);
    const before = existed ? await sha256(out) : null;
    const c = convertRun(['-O', 'vhdx', '-o', 'block_size=1M', src, out]);
    if (existed) await waitFor('the temporary file', () => readdirSync(dir).some((n) => n.startsWith(`.out${run}.vhdx.vdisk-`)));
    else await waitFor('the first file', appeared(`out${run}.vhdx`));
    await new Promise((r) => setTimeout(r, Math.floor(Math.random() * span)));
    c.child.kill('SIGKILL');
    const end = await c.closed;
    if (end.signal === 'SIGKILL') cut++;
    if (!existsSync(out)) assert.ok(!existed, `run ${run}: an OUTPUT that existed is gone`);
    else if (!complete(out)) {
      assert.ok(existed, `run ${run}: OUTPUT is there but incomplete`);
      assert.equal(await sha256(out), before, `run ${run}: OUTPUT is neither the old file nor the complete new image`);
    }
  }
  assert.ok(cut > 0, 'at least one run was cut off');

  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    const out = join(dir, `sig-${signal}.vhdx`);
    const c = convertRun(['-O', 'vhdx', '-o', 'block_size=1M', src, out]);
    await waitFor('the temporary file', () => readdirSync(dir).some((n) => n.startsWith(`.sig-${signal}.vhdx.vdisk-`)), 10_000);
    c.child.kill(signal);
    const end = await c.closed;
    // Finished (renamed into place) before the signal arrived: then OUTPUT is complete.
    if (existsSync(out)) assert.ok(complete(out), `${signal}: OUTPUT is there but incomplete (${c.stderr()})`);
    else assert.equal(end.code, code, `${signal}: exit status (${c.stderr()})`);
  }
  // Only the SIGKILLed runs may leave temporaries; remove those and look again for any other.
  for (const n of readdirSync(dir).filter((n) => /^\.out\d\.vhdx\.vdisk-[0-9a-f]{8}\.tmp$/.test(n))) sh('rm', [join(dir, n)]);
  noTemporaries(dir, 'signals');
});
