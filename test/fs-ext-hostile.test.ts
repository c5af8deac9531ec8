import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import fc from 'fast-check';
import { cliOnDamagedCopies, exerciseFilesystem } from './helpers/hostile-look.js';
import { FsGuard } from './helpers/fs-guard.js';
import { needPeers, havePeer, vdisk } from './helpers/peers.js';
import { bytes, run } from './helpers/ext.js';
import { Filesystem, VdiskError } from '../src/index.js';
import { ExtReader } from '../src/filesystems/ext/reader.js';
import { memoryVolume } from './helpers/memory.js';

const PEERS = ['mkfs.ext4', 'debugfs', 'dumpe2fs', 'setfattr'];
/** Bytes read from any one file: a mutated size may claim terabytes of holes. */

let work = '';
let tree = '';
before(() => {
  if (!PEERS.every(havePeer)) return;
  work = mkdtempSync(join(tmpdir(), 'vdisk-ext-hostile-'));
  tree = join(work, 'src');
  mkdirSync(join(tree, 'many'), { recursive: true });
  mkdirSync(join(tree, 'a', 'b', 'c'), { recursive: true });
  writeFileSync(join(tree, 'a.txt'), 'hello\n');
  writeFileSync(join(tree, 'tiny'), 'tiny\n');
  writeFileSync(join(tree, 'a', 'b', 'c', 'deep'), bytes(3000, 3));
  // 300 KiB on 1 KiB blocks needs the double-indirect block in a block map.
  writeFileSync(join(tree, 'big'), bytes(300 * 1024, 5));
  // Six islands of data between holes: six extents, more than the inode's root holds (a depth-1 tree).
  const islands = Buffer.alloc(6 * 9 * 1024);
  for (let i = 0; i < 6; i++) bytes(1024, 10 + i).copy(islands, i * 9 * 1024);
  writeFileSync(join(tree, 'islands'), islands);
  run('sh', ['-c', `cd '${tree}' && cp --sparse=always islands islands.tmp && mv islands.tmp islands`]);
  for (let i = 0; i < 120; i++) writeFileSync(join(tree, 'many', `name-number-${i}`), `${i}`);
  run('ln', ['-s', 'a.txt', join(tree, 'fast')]);
  run('ln', ['-s', 'a/b/c/' + 'x'.repeat(90), join(tree, 'slow')]);
  run('setfattr', ['-n', 'user.small', '-v', 'v', join(tree, 'a.txt')]);
  run('setfattr', ['-n', 'user.big', '-v', '0x' + bytes(600, 7).toString('hex'), join(tree, 'a.txt')]);
  process.on('exit', () => rmSync(work, { recursive: true, force: true }));
});

interface Fixture {
  name: string;
  image: Buffer;
  /** [offset, length] of the structures worth damaging. */
  targets: [number, number][];
}

/** Where the metadata lies, from dumpe2fs and debugfs (not from our reader). */
function locate(img: string, bs: number): [number, number][] {
  const targets: [number, number][] = [[1024, 1024]];
  const dump = run('dumpe2fs', [img]);
  const gdt = /Primary superblock at \d+, Group descriptors at (\d+)-(\d+)/.exec(dump);
  if (gdt) targets.push([+gdt[1] * bs, (+gdt[2] - +gdt[1] + 1) * bs]);
  const itable = /Inode table at (\d+)-/.exec(dump)!;
  // The first inode-table blocks hold the root, lost+found and the files made first.
  targets.push([+itable[1] * bs, 16 * bs]);
  const bitmap = /Block bitmap at (\d+)/.exec(dump)!;
  targets.push([+bitmap[1] * bs, bs]);
  const stat = run('debugfs', ['-R', 'stat /islands', img]) + run('debugfs', ['-R', 'stat /big', img]) + run('debugfs', ['-R', 'stat /a.txt', img]);
  for (const m of stat.matchAll(/\((?:ETB\d|IND|DIND)\):(\d+)/g)) targets.push([+m[1] * bs, bs]);
  const acl = /File ACL: (\d+)/.exec(run('debugfs', ['-R', 'stat /a.txt', img]));
  if (acl && +acl[1]) targets.push([+acl[1] * bs, bs]);
  for (const dir of ['/', '/many', '/a']) {
    for (const b of run('debugfs', ['-R', `blocks ${dir}`, img]).trim().split(/\s+/).filter(Boolean).slice(0, 3)) targets.push([+b * bs, bs]);
  }
  return targets;
}

const edit = fc.record({
  target: fc.nat(),
  pos: fc.nat(),
  kind: fc.constantFrom('byte', 'u16', 'u32'),
  byte: fc.integer({ min: 0, max: 255 }),
  u16: fc.oneof(fc.constantFrom(0, 1, 0xf30a, 0x7fff, 0x8000, 0xffff), fc.integer({ min: 0, max: 0xffff })),
  u32: fc.oneof(fc.constantFrom(0, 1, 2, 11, 0x1000, 0x7fffffff, 0x80000000, 0xffffffff), fc.integer({ min: 0, max: 0xffffffff })),
});

function mutate(base: Buffer, targets: [number, number][], edits: { target: number; pos: number; kind: string; byte: number; u16: number; u32: number }[]): Buffer {
  const b = Buffer.from(base);
  for (const e of edits) {
    const [at, len] = targets[e.target % targets.length];
    const p = at + (e.pos % len);
    if (e.kind === 'byte') b[p] = e.byte;
    else if (e.kind === 'u16' && p + 2 <= b.length) b.writeUInt16LE(e.u16, p - (p % 2));
    else if (p + 4 <= b.length) b.writeUInt32LE(e.u32, p - (p % 4));
  }
  return b;
}

describe('hostile ext volumes', () => {
  const fixtures: Fixture[] = [];
  const variants: [string, string[]][] = [
    ['ext4 with metadata_csum', ['-t', 'ext4', '-O', 'metadata_csum,^has_journal']],
    ['ext2 (block maps)', ['-t', 'ext2']],
    ['ext4 with inline_data', ['-t', 'ext4', '-O', 'inline_data,^has_journal']],
  ];

  before(() => {
    if (!PEERS.every(havePeer)) return;
    for (const [name, args] of variants) {
      const img = join(work, `${name.replace(/\W+/g, '-')}.img`);
      run('mkfs.ext4', ['-q', '-F', '-b', '1024', '-N', '256', ...args, '-d', tree, img, '4M']);
      fixtures.push({ name, image: readFileSync(img), targets: locate(img, 1024) });
    }
    // A journal left needing recovery (two transactions written by debugfs): the replay's input is damaged too.
    const img = join(work, 'journal.img');
    run('mkfs.ext4', ['-q', '-F', '-b', '1024', '-N', '256', '-t', 'ext4', '-J', 'size=1', '-d', tree, img, '8M']);
    const a = /\(0\):(\d+)/.exec(run('debugfs', ['-R', 'stat /a.txt', img]))![1];
    writeFileSync(join(work, 'jblock'), Buffer.alloc(1024, 0x4a));
    writeFileSync(join(work, 'jcmds'), `jo\njw -b ${a} ${join(work, 'jblock')}\njw -r ${a}\njw -b ${a} ${join(work, 'jblock')}\njc\n`);
    run('debugfs', ['-w', '-f', join(work, 'jcmds'), img]);
    const journal = /\(0-\d+\):(\d+)-/.exec(run('debugfs', ['-R', 'stat <8>', img]))!;
    const targets = locate(img, 1024);
    targets.push([+journal[1] * 1024, 12 * 1024]);
    fixtures.push({ name: 'ext4 with a journal needing recovery', image: readFileSync(img), targets });
  });

  test('the unmutated fixtures read cleanly', async (t) => {
    if (!needPeers(t, ...PEERS)) return;
    for (const f of fixtures) {
      const reader = await ExtReader.open(memoryVolume(f.image), { name: f.name });
      await exerciseFilesystem(new Filesystem(reader, f.name));
      assert.deepEqual(reader.warnings.filter((w) => !/journal needs recovery: replayed 3 transactions/.test(w)), [], f.name);
    }
  });

  test('mutated superblocks, descriptors, inodes, extent and indirect blocks, directories and xattrs: a one-line VdiskError or success, never a hang', async (t) => {
    if (!needPeers(t, ...PEERS)) return;
    const started = Date.now();
    const guard = new FsGuard();
    t.after(() => guard.close());
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.array(edit, { minLength: 1, maxLength: 4 }), async (which, edits) => {
        if (Date.now() - started > 40_000) return;
        const f = fixtures[which % fixtures.length];
        const image = mutate(f.image, f.targets, edits);
        try {
          // In a worker: a loop that never yields fails as a hang, a heap past its limit as unbounded memory.
          await guard.exercise('ext4', image, 'hostile.img', 5000);
        } catch (err) {
          if (!(err instanceof VdiskError)) throw err;
          assert.ok(!err.message.includes('\n'), err.message);
          assert.ok(err.message.startsWith('hostile.img: '), err.message);
        }
      }),
      { numRuns: 250 },
    );
  });

  test('the CLI on damaged volumes: one line, exit 1, the image unchanged', async (t) => {
    if (!needPeers(t, ...PEERS)) return;
    const f = fixtures[0];
    const cases: [string, (b: Buffer) => void][] = [
      ['extent depth 9', (b) => {
        const at = f.targets.find(([o]) => o > 1024 * 20 && b.readUInt16LE(o) === 0xf30a);
        if (at) b.writeUInt16LE(9, at[0] + 6);
      }],
      ['inodes per group 0', (b) => b.writeUInt32LE(0, 1024 + 0x28)],
      ['root directory block zeroed', (b) => {
        const [o, l] = f.targets[f.targets.length - 9] ?? f.targets[0];
        b.fill(0, o, o + l);
      }],
    ];
    cliOnDamagedCopies(work, f.image, cases, (img, slug) => [['ls', '-R', img, '/'], ['get', img, '/', join(work, `out-${slug}`)], ['cat', img, '/islands']]);
  });
});
