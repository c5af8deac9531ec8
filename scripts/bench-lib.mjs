// Shared helpers for the benchmarks: timing commands in one run so ratios compare like with like.
import { spawnSync, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, writeSync, closeSync, ftruncateSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const VDISK = join(ROOT, 'bin', 'vdisk');
export const WORK = process.env.VDISK_BENCH_DIR ?? join(tmpdir(), 'vdisk-bench');
export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;

// NODE_EXTRA_CA_CERTS makes every Node process read a certificate bundle as it starts (30 ms per
// start on the machine these targets were set on: node -e 0 took 0.05 s with it, 0.02 s without).
// vdisk makes no TLS connection, so that is the machine's configuration, not the tool: the commands
// timed here run without it, and the run says so. BENCH_KEEP_CA_CERTS=1 keeps it.
if (process.env.NODE_EXTRA_CA_CERTS && process.env.BENCH_KEEP_CA_CERTS !== '1') {
  delete process.env.NODE_EXTRA_CA_CERTS;
  console.log('bench: NODE_EXTRA_CA_CERTS is unset for the timed commands (BENCH_KEEP_CA_CERTS=1 keeps it)');
}

/**
 * A directory for one benchmark's fixtures, removed when the process exits (gigabytes of images must
 * not pile up in /tmp). With VDISK_BENCH_KEEP=1 the directory is WORK/tag instead and kept, so that a
 * later run with the same sizes reuses the fixtures; `fresh` then says whether they must be made.
 */
export function fixtureDir(tag) {
  mkdirSync(WORK, { recursive: true });
  if (process.env.VDISK_BENCH_KEEP === '1') {
    const dir = join(WORK, tag);
    const fresh = !existsSync(join(dir, '.done'));
    if (fresh) rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    return { dir, fresh, done: () => closeSync(openSync(join(dir, '.done'), 'w')) };
  }
  const dir = mkdtempSync(join(WORK, `${tag}-`));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  process.on('exit', remove);
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));
  return { dir, fresh: true, done: () => {} };
}

export function has(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

export function need(cmd) {
  if (!has(cmd)) {
    console.error(`bench: ${cmd} is needed (apt-get install qemu-utils)`);
    process.exit(1);
  }
}

export function sh(cmd, args) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
}

/** Wall time of `sh -c script`, in seconds. */
export function time(script) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('sh', ['-c', script], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) throw new Error(`bench command failed: ${script}`);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/**
 * Median of `runs` timings of each script (after one warm-up each). The order alternates every round
 * so that neither command always inherits the other's after-effects (writeback, discards).
 */
export function compare(scripts, runs = 5, before = () => {}) {
  const times = scripts.map(() => []);
  for (let r = -1; r < runs; r++) {
    const order = scripts.map((_, i) => i);
    if (r % 2 === 1) order.reverse();
    for (const i of order) {
      before();
      const t = time(scripts[i]);
      if (r >= 0) times[i].push(t);
    }
  }
  return times.map((ts) => ts.sort((a, b) => a - b)[Math.floor(ts.length / 2)]);
}

/**
 * Where exports are written: tmpfs when there is one, so the timings measure the tools rather than
 * the disk file system's allocation, writeback and discards of gigabytes of output.
 */
export const OUT_DIR = existsSync('/dev/shm') ? '/dev/shm' : WORK;

/**
 * `size` bytes of varied doubles: not zeros, not one repeated byte, so every byte a benchmark copies is
 * read and written (nothing downstream can skip zeros, compress or deduplicate).
 */
export function variedBytes(size) {
  const buf = Buffer.alloc(size);
  for (let i = 0; i + 8 <= buf.length; i += 8) buf.writeDoubleLE(i * 1.000001 + 1, i);
  return buf;
}

/** A file of `bytes` varied bytes, written 4 MiB at a time, each piece stamped with its offset. */
export function writeVariedFile(path, bytes) {
  const buf = variedBytes(4 * MiB);
  const fd = openSync(path, 'w');
  try {
    for (let at = 0; at < bytes; at += buf.length) {
      buf.writeUInt32LE(at % 2 ** 32, 0);
      writeSync(fd, buf, 0, Math.min(buf.length, bytes - at), at);
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * A raw disk of `size` bytes with `dataBytes` of non-zero data spread over it in 32 MiB extents
 * (every other extent), then the same as a dynamic VHDX written by qemu-img.
 */
export function dataDisk(name, size, dataBytes) {
  mkdirSync(WORK, { recursive: true });
  const raw = join(WORK, `${name}.raw`);
  const vhdx = join(WORK, `${name}.vhdx`);
  if (!existsSync(vhdx) || !existsSync(raw)) {
    const extent = 32 * MiB;
    const fd = openSync(raw, 'w');
    ftruncateSync(fd, size);
    const buf = variedBytes(4 * MiB);
    let written = 0;
    for (let at = 0; written < dataBytes && at < size; at += 2 * extent) {
      for (let o = 0; o < extent && written < dataBytes; o += buf.length) {
        buf.writeUInt32LE(at + o, 0);
        writeSync(fd, buf, 0, buf.length, at + o);
        written += buf.length;
      }
    }
    closeSync(fd);
    rmSync(vhdx, { force: true });
    sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vhdx', raw, vhdx]);
  }
  return { raw, vhdx };
}

export function report(rows) {
  for (const r of rows) {
    const ok = r.ratio <= r.target;
    console.log(
      `${r.name.padEnd(44)} vdisk ${r.ours.toFixed(3)}s  ${r.peer.padEnd(22)} ${r.theirs.toFixed(3)}s  ratio ${r.ratio.toFixed(2)} (target <= ${r.target}) ${ok ? 'ok' : 'MISSED'}`,
    );
  }
  return rows.every((r) => r.ratio <= r.target);
}

/**
 * The splice-copy floor (scripts/copy-floor.c), built into WORK when a C compiler is there; null
 * otherwise. Its time plus `node -e 0` is the least any Node program could take for a copy job here.
 */
export function floorCopier() {
  if (!has('cc')) return null;
  mkdirSync(WORK, { recursive: true });
  const bin = join(WORK, 'copy-floor');
  if (!existsSync(bin)) {
    const r = spawnSync('cc', ['-O2', '-Wall', '-o', bin, join(ROOT, 'scripts', 'copy-floor.c')], { encoding: 'utf8' });
    if (r.status !== 0) {
      console.error(`bench: copy-floor did not build, so no floor is shown:\n${r.stderr}`);
      return null;
    }
  }
  return bin;
}

/** One line: what the floor (a C splice copy plus Node's bare start) gives against the peer and the target. */
export function reportFloor({ name, floor, nodeStart, peer, theirs, target }) {
  const least = floor + nodeStart;
  const ratio = least / theirs;
  console.log(
    `  floor for ${name}: C splice copy ${floor.toFixed(3)}s + node -e 0 ${nodeStart.toFixed(3)}s = ${least.toFixed(3)}s = ${ratio.toFixed(2)}x ${peer}` +
      (ratio > target
        ? ` (target ${target} lies below even this floor: no Node program can meet it here)`
        : ` (target ${target} lies above this floor: only a copy within ${Math.round((target / ratio - 1) * 100)}% of the kernel's one-copy path meets it)`),
  );
}

/**
 * The host side alone of extracting `tree` (a copy of it already on the host): the median over `runs`
 * of scripts/tree-floor.mjs making it again from memory under OUT_DIR, in seconds (the making only,
 * not its loading).
 */
export function treeFloor(tree, runs = 5) {
  const dest = join(OUT_DIR, 'vdisk-bench-tree-floor');
  const times = [];
  for (let r = 0; r < runs; r++) {
    rmSync(dest, { recursive: true, force: true });
    spawnSync('sync');
    const out = execFileSync('node', [join(ROOT, 'scripts', 'tree-floor.mjs'), tree, dest], { encoding: 'utf8' });
    times.push(Number(out.trim()));
  }
  rmSync(dest, { recursive: true, force: true });
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
}

/** One line: the host side alone plus Node's bare start, against the peer's whole extraction and the target. */
export function reportTreeFloor({ name, floor, nodeStart, peer, theirs, target }) {
  const least = floor + nodeStart;
  const ratio = least / theirs;
  const left = theirs * target - least;
  console.log(
    `  floor for ${name}: making the same files from memory ${floor.toFixed(3)}s + node -e 0 ${nodeStart.toFixed(3)}s = ${least.toFixed(3)}s = ${ratio.toFixed(2)}x ${peer}` +
      (left <= 0
        ? ` (target ${target} lies below even this floor: no Node program can meet it here)`
        : ` (target ${target} leaves ${(left * 1000).toFixed(0)} ms for reading the volume, compiling the code and all else)`),
  );
}
