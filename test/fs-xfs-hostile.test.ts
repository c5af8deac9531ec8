import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import fc from 'fast-check';
import { needPeers, havePeer, vdisk } from './helpers/peers.js';
import { bytes, run } from './helpers/ext.js';
import { buildXfs, mkfsXfs, needMount, protofile, xfsDbSb, XFS_PEERS } from './helpers/xfs.js';
import { Filesystem, VdiskError } from '../src/index.js';
import { XfsReader } from '../src/filesystems/xfs/reader.js';
import { memoryVolume } from './helpers/memory.js';
import { cliOnDamagedCopies, exerciseFilesystem } from './helpers/hostile-look.js';
import { FsGuard } from './helpers/fs-guard.js';

/** Bytes read from any one file: a mutated size may claim terabytes of holes. */

let work = '';
let tree = '';
before(() => {
  if (!XFS_PEERS.every(havePeer)) return;
  work = mkdtempSync(join(tmpdir(), 'vdisk-xfs-hostile-'));
  tree = join(work, 'src');
  mkdirSync(join(tree, 'a', 'b', 'c'), { recursive: true });
  writeFileSync(join(tree, 'a.txt'), 'hello\n');
  writeFileSync(join(tree, 'a', 'b', 'c', 'deep'), bytes(3000, 3));
  writeFileSync(join(tree, 'big'), bytes(300 * 1024, 5));
  mkdirSync(join(tree, 'many'));
  for (let i = 0; i < 120; i++) writeFileSync(join(tree, 'many', `name-number-${i}`), `${i}`);
  symlinkSync('a.txt', join(tree, 'fast'));
  symlinkSync('a/b/c/' + 'x'.repeat(200), join(tree, 'slow'));
  process.on('exit', () => rmSync(work, { recursive: true, force: true }));
});

interface Fixture {
  name: string;
  image: Buffer;
  /** [offset, length] of the structures worth damaging. */
  targets: [number, number][];
}

/** Where the metadata lies, from xfs_db (not from our reader). */
function locate(img: string, paths: string[]): [number, number][] {
  const sb = xfsDbSb(img);
  const bs = +sb.blocksize;
  const ss = +sb.sectsize;
  const isize = +sb.inodesize;
  const agBytes = +sb.agblocks * bs;
  const db = (...cmds: string[]) => run('xfs_db', ['-r', ...cmds.flatMap((c) => ['-c', c]), img]);
  const byteOf = (kind: string, n: number) => Number(/\((\d+)\)/.exec(db(`convert ${kind} ${n} byte`))![1]);
  const targets: [number, number][] = [[0, ss]];
  for (let ag = 0; ag < Math.min(2, +sb.agcount); ag++) targets.push([ag * agBytes + ss, 3 * ss]);
  targets.push([byteOf('inode', +sb.rootino), 8 * isize]);
  const ls = db('ls /');
  for (const p of paths) {
    const m = new RegExp(`^\\s*\\d+\\s+(\\d+)\\s+\\S+\\s+\\S+\\s+\\d+ ${p}\\b`, 'm').exec(ls);
    if (!m) continue;
    const ino = +m[1];
    targets.push([byteOf('inode', ino), isize]);
    const maps = db(`inode ${ino}`, 'bmap', 'bmap -a');
    let n = 0;
    for (const b of maps.matchAll(/startblock (\d+) \(\d+\/\d+\) count (\d+)/g)) {
      if (n++ >= 4) break;
      targets.push([byteOf('fsblock', +b[1]), Math.min(+b[2], 2) * bs]);
    }
    // The BMBT blocks of a btree-format file (the root's pointers).
    const ptrs = /ptrs\[[^\]]*\] = (.*)/.exec(db(`inode ${ino}`, 'print'));
    if (ptrs) for (const pm of ptrs[1].matchAll(/\d+:(\d+)/g)) targets.push([byteOf('fsblock', +pm[1]), bs]);
  }
  const bnoroot = Number(/bnoroot = (\d+)/.exec(db('agf 0', 'print bnoroot'))![1]);
  targets.push([bnoroot * bs, bs]);
  return targets;
}

const edit = fc.record({
  target: fc.nat(),
  pos: fc.nat(),
  kind: fc.constantFrom('byte', 'u16', 'u32', 'u64'),
  byte: fc.integer({ min: 0, max: 255 }),
  u16: fc.oneof(fc.constantFrom(0, 1, 2, 3, 0x7fff, 0x8000, 0xffff), fc.integer({ min: 0, max: 0xffff })),
  u32: fc.oneof(fc.constantFrom(0, 1, 2, 8, 0x1000, 0x7fffffff, 0x80000000, 0xffffffff), fc.integer({ min: 0, max: 0xffffffff })),
});

type Edit = { target: number; pos: number; kind: string; byte: number; u16: number; u32: number };

/** Applies the edits in place (big-endian, as XFS stores words) and returns how to undo them. */
function mutate(b: Buffer, targets: [number, number][], edits: Edit[]): () => void {
  const undo: [number, Buffer][] = [];
  for (const e of edits) {
    const [at, len] = targets[e.target % targets.length];
    const p = at + (e.pos % len);
    const width = e.kind === 'byte' ? 1 : e.kind === 'u16' ? 2 : e.kind === 'u32' ? 4 : 8;
    const start = p - (p % width);
    if (start + width > b.length) continue;
    undo.push([start, Buffer.from(b.subarray(start, start + width))]);
    if (e.kind === 'byte') b[start] = e.byte;
    else if (e.kind === 'u16') b.writeUInt16BE(e.u16, start);
    else if (e.kind === 'u32') b.writeUInt32BE(e.u32, start);
    else b.writeBigUInt64BE(BigInt(e.u32) * BigInt(e.u16 + 1), start);
  }
  return () => {
    for (const [at, old] of undo.reverse()) old.copy(b, at);
  };
}

describe('hostile xfs volumes', () => {
  const fixtures: Fixture[] = [];
  const paths = ['a.txt', 'big', 'many', 'slow', 'frag-a', 'nodedir', 'leafdir', 'attrs', 'prealloc', 'a'];

  before(() => {
    if (!XFS_PEERS.every(havePeer)) return;
    // v4 by protofile (no mount needed), then v5 with the kernel's btree files, node directories and leaf attributes.
    const v4 = join(work, 'v4.img');
    writeFileSync(join(work, 'v4.proto'), protofile(tree));
    mkfsXfs(v4, 32, ['-m', 'crc=0', '-b', 'size=1024', '-d', 'agcount=2', '-p', join(work, 'v4.proto')]);
    fixtures.push({ name: 'v4, 1 KiB blocks', image: readFileSync(v4), targets: locate(v4, paths) });
    if (process.getuid?.() !== 0) return;
    const v5 = join(work, 'v5.img');
    buildXfs(v5, 32, ['-b', 'size=1024', '-d', 'agcount=2'], tree, join(work, 'mnt'), 'tiny');
    fixtures.push({ name: 'v5, 1 KiB blocks', image: readFileSync(v5), targets: locate(v5, paths) });
  });

  test('the unmutated fixtures read cleanly', async (t) => {
    if (!needPeers(t, ...XFS_PEERS) || !needMount(t)) return;
    assert.equal(fixtures.length, 2);
    for (const f of fixtures) {
      const reader = await XfsReader.open(memoryVolume(f.image, 1024 * 1024), { name: f.name });
      await exerciseFilesystem(new Filesystem(reader, f.name));
      assert.deepEqual(reader.warnings, [], f.name);
    }
  });

  test('mutated superblocks, AG headers, inodes, directory, BMBT, attribute and free-space blocks: a one-line VdiskError or success, never a hang', async (t) => {
    if (!needPeers(t, ...XFS_PEERS) || !needMount(t)) return;
    const started = Date.now();
    let runs = 0;
    const guard = new FsGuard();
    t.after(() => guard.close());
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.array(edit, { minLength: 1, maxLength: 4 }), async (which, edits) => {
        if (Date.now() - started > 8_000) return;
        runs++;
        const f = fixtures[which % fixtures.length];
        const restore = mutate(f.image, f.targets, edits);
        try {
          // In a worker: a loop that never yields fails as a hang, a heap past its limit as unbounded memory.
          await guard.exercise('xfs', f.image, 'hostile.img', 5000, 1024 * 1024);
        } catch (err) {
          if (!(err instanceof VdiskError)) throw err;
          assert.ok(!err.message.includes('\n'), err.message);
          assert.ok(err.message.startsWith('hostile.img: '), err.message);
        } finally {
          restore();
        }
      }),
      { numRuns: 400 },
    );
    // About 100 ms a case: the time bound leaves a hundred cases or more (fewer on a loaded machine).
    assert.ok(runs >= 30, `only ${runs} cases ran`);
    t.diagnostic(`${runs} mutated volumes`);
  });

  test('the CLI on damaged volumes: one line, exit 1, the image unchanged', async (t) => {
    if (!needPeers(t, ...XFS_PEERS) || !needMount(t)) return;
    const f = fixtures[1];
    const [rootAt] = f.targets[3];
    const cases: [string, (b: Buffer) => void][] = [
      ['agcount 0', (b) => b.writeUInt32BE(0, 88)],
      ['root inode magic', (b) => b.writeUInt16BE(0x1234, rootAt)],
      ['bnobt root zeroed', (b) => {
        const [o, l] = f.targets[f.targets.length - 1];
        b.fill(0, o, o + l);
      }],
    ];
    cliOnDamagedCopies(work, f.image, cases, (img, slug) => [['ls', '-R', img, '/'], ['cat', img, '/frag-a']]);
  });
});
