import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, openSync, readFileSync, readSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { ROOT, VDISK, needPeers, sh, sha256, sha256Buffer, tempDir } from './helpers/peers.js';
import { makeQemuVhdx } from './helpers/qemu.js';
import { makeGpt } from './helpers/handmade.js';
import { LOG_GUID, appendBlock, fillBat, hugeLog, hugeParentLocator, regions, setLog, writeLogEntry } from './helpers/hostile-vhdx.js';

/**
 * Sizes a file claims cannot make vdisk abort, swell or crawl: each hostile file here, built at run
 * time from a QEMU-made image, gets a one-line answer within 10 s and 512 MiB (as /usr/bin/time -v
 * measures the whole process), or the documented refusal.
 */

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const LIMIT_SECONDS = 10;
const LIMIT_RSS = 512 * MiB;

interface Measured {
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
  rss: number;
}

/** Runs the CLI under /usr/bin/time -v (through sh when `shell` pipes something into it). */
function measured(args: string[], shell?: string): Measured {
  const timeOut = join(tmpdir(), `vdisk-time-${process.pid}-${Math.random().toString(36).slice(2)}.txt`);
  const quoted = [process.execPath, VDISK, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = spawnSync('sh', ['-c', `${shell ? `${shell} | ` : ''}/usr/bin/time -v -o '${timeOut}' ${quoted}`], {
    env: { ...process.env, NO_COLOR: '1' },
    maxBuffer: 256 * MiB,
    timeout: 120_000,
    cwd: ROOT,
  });
  const report = readFileSync(timeOut, 'utf8');
  rmSync(timeOut);
  const rss = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(report)?.[1]) * 1024;
  const wall = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)/.exec(report);
  assert.ok(wall && rss > 0, `time -v report: ${report}`);
  const seconds = Number(wall[1] ?? 0) * 3600 + Number(wall[2]) * 60 + Number(wall[3]);
  return { code: r.status ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString(), seconds, rss };
}

/** Within the bounds, no stack trace, no native abort, and the exit code the contract names. */
function assertBounded(r: Measured, code: number, what: string): void {
  assert.ok(r.seconds < LIMIT_SECONDS, `${what}: took ${r.seconds} s`);
  assert.ok(r.rss < LIMIT_RSS, `${what}: ${Math.round(r.rss / MiB)} MiB resident`);
  assert.doesNotMatch(r.stderr, /\n\s+at |internal error|Assertion failed|Maximum/, `${what}: ${r.stderr}`);
  assert.equal(r.code, code, `${what}: exit code (stderr: ${r.stderr.slice(0, 400)})`);
}

/** A refusal: exit 1 and exactly one line on stderr matching `pattern`. */
function assertRefused(r: Measured, pattern: RegExp, what: string): void {
  assertBounded(r, 1, what);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `${what}: one line, got ${JSON.stringify(r.stderr.slice(0, 400))}`);
  assert.match(lines[0], /^vdisk: /, what);
  assert.match(lines[0], pattern, what);
}

/** Size, modification time and the first 16 MiB (all but the sparse log) of a file. */
function fingerprint(path: string): [number, number, string] {
  const st = statSync(path);
  const fd = openSync(path, 'r');
  const head = Buffer.alloc(16 * MiB);
  readSync(fd, head, 0, head.length, 0);
  closeSync(fd);
  return [st.size, st.mtimeMs, sha256Buffer(head)];
}

function base(dir: string, name: string, size = '16M'): string {
  return makeQemuVhdx(dir, { name, size, options: ['block_size=1M', 'log_size=1M'], io: ['write -P 0x11 0 64k'] });
}

describe('hostile lengths end within 10 s and 512 MiB', () => {
  test('log and log entry of 4 GiB and 2 GiB: read a MiB at a time, the entry found and checked', async (t) => {
    if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
    const dir = tempDir(t);
    for (const [name, logLength] of [['4g', 4 * GiB - MiB], ['2g', 2 * GiB]] as const) {
      const img = base(dir, `log-${name}`);
      // One valid entry as long as the whole log (its checksum covers all of it), holding no change.
      hugeLog(img, logLength, logLength);
      const before = fingerprint(img);
      const info = measured(['info', '--output', 'json', img]);
      assertBounded(info, 0, `${name} info`);
      const data = JSON.parse(info.stdout)['format-specific'].data;
      assert.equal(data.log.length, logLength);
      assert.equal(data.log.state, 'pending');
      const check = measured(['check', img]);
      assertBounded(check, 2, `${name} check`);
      assert.match(check.stdout, /pending log: 1 entry \(sequence 1\.\.1\) not yet replayed/);
      const read = measured(['read', img, '-', '--length', '65536']);
      assertBounded(read, 0, `${name} read`);
      assert.ok(Buffer.from(read.stdout, 'latin1').length > 0);
      assert.deepEqual(fingerprint(img), before, `${name}: look-only commands leave the file alone`);
      rmSync(img);
    }
  });

  test('a parent locator item of 4 GiB or 2 GiB is refused by the 1 MiB limit of MS-VHDX 2.6.1.2', async (t) => {
    if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
    const dir = tempDir(t);
    for (const [name, length] of [['4g', 4 * GiB - 2 * MiB], ['2g', 2 * GiB]] as const) {
      const img = base(dir, `loc-${name}`);
      hugeParentLocator(img, length);
      const pattern = new RegExp(`parent locator item is ${length} bytes, over the format's limit of 1048576`);
      assertRefused(measured(['info', img]), pattern, `${name} info`);
      assertRefused(measured(['read', img, '-', '--length', '4096']), pattern, `${name} read`);
      const check = measured(['check', img]);
      assertBounded(check, 2, `${name} check`);
      assert.match(check.stdout, pattern);
      rmSync(img);
    }
  });

  test('a pending zero descriptor of 1 TiB is refused, not replayed as a terabyte of writes', async (t) => {
    if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
    const dir = tempDir(t);
    const img = base(dir, 'zero');
    setLog(img, { offset: MiB, length: MiB, guid: LOG_GUID });
    writeLogEntry(img, MiB, { descriptors: [{ kind: 'zero', fileOffset: 4 * MiB, length: 1024 * GiB }] });
    const before = await sha256(img);
    const pattern = /log entry at log offset 0: zero descriptor 0 clears 1099511627776 bytes at 4194304, past the largest file this image can need \(\d+ bytes\)/;
    assertRefused(measured(['info', img]), pattern, 'info');
    assertRefused(measured(['read', img, '-', '--length', '4096']), pattern, 'read');
    const check = measured(['check', img]);
    assertBounded(check, 2, 'check');
    assert.match(check.stdout, pattern);
    const repair = measured(['check', '-r', 'all', img]);
    assertBounded(repair, 2, 'check -r all');
    assert.equal(await sha256(img), before, 'nothing was replayed');
    // QEMU replays it (its limit is the file system's), which is what we refuse to do: the file it
    // leaves is a terabyte long.
  });

  describe('an 8 TiB disk of 1 MiB blocks: 8,390,655 BAT entries', () => {
    const ENTRIES = 8 * 1024 * 1024 + 2047; // 8 Mi payload entries and one sector-bitmap entry per 4096
    const isBitmap = (i: number) => i % 4097 === 4096;

    test('every entry in the invalid state 4', async (t) => {
      if (!needPeers(t, 'qemu-img')) return;
      const dir = tempDir(t);
      const img = join(dir, 'invalid.vhdx');
      sh('qemu-img', ['create', '-q', '-f', 'vhdx', '-o', 'block_size=1M', img, '8T']);
      fillBat(img, ENTRIES, () => 4);
      assertBounded(measured(['info', img]), 0, 'info');
      const check = measured(['check', '--output', 'json', img]);
      assertBounded(check, 2, 'check');
      const report = JSON.parse(check.stdout);
      assert.equal(report.corruptions, ENTRIES, 'every entry counted');
      assert.equal(report.findings.length, 100, 'the first 100 listed');
      assert.ok(report['unlisted-findings'] >= ENTRIES - 100, 'the rest counted');
      const human = measured(['check', img]);
      assertBounded(human, 2, 'check, human');
      assert.match(human.stdout, /\.\.\. and \d+ more findings not listed/);
      assert.match(human.stdout, new RegExp(`${ENTRIES} errors were found on the image`));
      const map = measured(['map', '--output', 'json', img]);
      assertRefused(map, /BAT entry 0 has invalid state 4/, 'map');
      assertRefused(measured(['read', img, '-', '--length', '4096']), /BAT entry 0 has invalid state 4/, 'read');

      const repair = measured(['check', '-r', 'all', '--output', 'json', img]);
      assertBounded(repair, 0, 'check -r all');
      const fixed = JSON.parse(repair.stdout);
      assert.equal(fixed['corruptions-fixed'], ENTRIES);
      assert.equal(fixed.corruptions, 0);
      // QEMU agrees the repaired image is clean and reads it as zeros where it looks.
      sh('qemu-img', ['check', '-f', 'vhdx', img]);
      const r = spawnSync('qemu-io', ['-f', 'vhdx', '-c', 'read -P 0 8796092956672 65536', img]);
      assert.equal(r.status, 0, r.stderr.toString());
    });

    test('every payload entry pointing at the same block', async (t) => {
      if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
      const dir = tempDir(t);
      const img = join(dir, 'shared.vhdx');
      sh('qemu-img', ['create', '-q', '-f', 'vhdx', '-o', 'block_size=1M', img, '8T']);
      const at = appendBlock(img, MiB, 0x5a);
      fillBat(img, ENTRIES, (i) => (isBitmap(i) ? 0 : (at / MiB) * 2 ** 20 + 6));
      // QEMU reads any block as the shared one: so do we, where reads are asked for.
      const q = spawnSync('qemu-io', ['-f', 'vhdx', '-c', 'read -P 0x5a 4398046511104 4096', img]);
      assert.equal(q.status, 0, q.stderr.toString());
      const read = measured(['read', img, '-', '--offset', '4398046511104', '--length', '4096']);
      assertBounded(read, 0, 'read');
      assert.ok(Buffer.from(read.stdout, 'latin1').every((b) => b === 0x5a));
      assertBounded(measured(['info', img]), 0, 'info');
      const check = measured(['check', '--output', 'json', img]);
      assertBounded(check, 2, 'check');
      const report = JSON.parse(check.stdout);
      assert.equal(report.corruptions, 8 * 1024 * 1024 - 1, 'every payload entry after the first shares its block');
      assert.match(report.findings.find((f: { structure: string }) => f.structure === 'BAT').message, /BAT entries 0 and 1 share file space at \d+/);
      assertRefused(measured(['map', img]), /block 1 is stored at file offset \d+, where another block already is/, 'map');

      const repair = measured(['check', '-r', 'all', '--output', 'json', img]);
      assertBounded(repair, 0, 'check -r all');
      assert.equal(JSON.parse(repair.stdout)['corruptions-fixed'], 8 * 1024 * 1024 - 1);
      const after = measured(['map', '--output', 'json', img]);
      assertBounded(after, 0, 'map after repair');
      assert.deepEqual(
        JSON.parse(after.stdout).filter((e: { data: boolean }) => e.data),
        [{ start: 0, length: MiB, depth: 0, present: true, zero: false, data: true, offset: at }],
        'block 0 keeps its data; the rest read as unallocated',
      );
    });
  });

  test('a GPT of 32,768 partitions: every output linear', async (t) => {
    if (!needPeers(t, 'sfdisk')) return;
    const dir = tempDir(t);
    const img = join(dir, 'gpt.raw');
    makeGpt(img, 32768, 32768);
    const theirs = JSON.parse(sh('sfdisk', ['-J', img])).partitiontable.partitions as { start: number; size: number }[];
    assert.equal(theirs.length, 32768);
    const json = measured(['partitions', '--output', 'json', img]);
    assertBounded(json, 0, 'partitions json');
    const ours = JSON.parse(json.stdout).partitions as { start: number; size: number }[];
    assert.deepEqual(ours.map((p) => [p.start / 512, p.size / 512]), theirs.map((p) => [p.start, p.size]), 'the same partitions as sfdisk');
    const human = measured(['partitions', img]);
    assertBounded(human, 0, 'partitions human');
    assert.equal(human.stdout.trimEnd().split('\n').length, 1 + 2 + 32768 + 1, 'title, border and head, a row each, border');
    assert.match(human.stdout, /│ 32768 +│ 270330 +│ 270337 +│ 8 +│/);
    const md = measured(['mount-detect', img]);
    assertBounded(md, 0, 'mount-detect human');
    assert.equal(md.stdout.trimEnd().split('\n').length, 2 + 32768 + 1);
  });

  test('write from an endless pipe stops at the disk size with the image untouched', async (t) => {
    if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
    const dir = tempDir(t);
    const img = base(dir, 'w');
    const before = await sha256(img);
    const r = measured(['write', img, '-'], 'yes');
    assertRefused(r, /writing more than 16777216 bytes at offset 0 would run past the end of the virtual disk \(16777216 bytes\); nothing was written/, 'write');
    const at = measured(['write', img, '-', '--offset', String(16 * MiB - 4096)], 'yes');
    assertRefused(at, /writing more than 4096 bytes at offset 16773120/, 'write at an offset');
    assert.equal(await sha256(img), before);
  });
});

test('check -r all counts the leak a log replay reveals and truncation fixes, and the replay as qemu-img does', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  const img = base(dir, 'leak');
  // Unreferenced data at the end of the file, and a pending log entry (rewriting a sector of the
  // metadata region's unused space) to replay before it can be seen.
  appendBlock(img, MiB, 0x77);
  setLog(img, { offset: MiB, length: MiB, guid: LOG_GUID });
  writeLogEntry(img, MiB, { descriptors: [{ kind: 'data', fileOffset: regions(img).metadata + 256 * 1024, fill: 0 }] });
  const copy = join(dir, 'qemu.vhdx');
  copyFileSync(img, copy);
  const theirs = sh('qemu-img', ['check', '-r', 'all', '-f', 'vhdx', copy]);
  assert.match(theirs, /1 corruptions/, 'QEMU counts the replay as one corruption repaired');
  const r = measured(['check', '-r', 'all', '--output', 'json', img]);
  assertBounded(r, 0, 'check -r all');
  const report = JSON.parse(r.stdout);
  assert.equal(report['corruptions-fixed'], 1, 'the replayed log');
  assert.equal(report['leaks-fixed'], 1, 'the leaked tail the replay revealed, truncated');
  assert.equal(report.leaks + report.corruptions, 0);
  assert.ok(report.findings.some((f: { structure: string; fixed?: boolean }) => f.structure === 'file' && f.fixed));
  const human = spawnSync(process.execPath, [VDISK, 'check', img], { env: { ...process.env, NO_COLOR: '1' } });
  assert.equal(human.status, 0, human.stdout.toString());
});
