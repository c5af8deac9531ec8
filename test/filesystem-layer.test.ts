import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readlinkSync, lstatSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { Filesystem, modeOf, type FsReader, type FsStats, type FsDirEntry, type FileType } from '../src/filesystems/filesystem.js';
import { extractTree } from '../src/ops/extract.js';
import { tarTree } from '../src/ops/tar.js';
import { VdiskError } from '../src/errors.js';

/**
 * The generic layer (path walker, extraction, tar) over a small in-memory reader: what it must do with
 * names and links that no well-formed volume has, which the readers' own tests cannot easily make.
 */
interface MemNode {
  ino: number;
  type: FileType;
  mode: number;
  data?: Buffer;
  target?: string;
  children?: [string, MemNode][];
  nlink?: number;
  holes?: boolean;
}

class MemReader implements FsReader<MemNode> {
  readonly type = 'mem';
  readonly blockSize = 512;
  readonly warnings: string[] = [];
  constructor(private readonly top: MemNode) {}
  async root() { return this.top; }
  async stat(n: MemNode): Promise<FsStats> {
    const size = n.data?.length ?? n.target?.length ?? 0;
    return { type: n.type, mode: modeOf(n.type, n.mode), uid: 0, gid: 0, nlink: n.nlink ?? 1, ino: n.ino, size, mtime: { sec: 1_700_000_000 + n.ino, nsec: 123_000_000 } };
  }
  async readdir(n: MemNode): Promise<FsDirEntry<MemNode>[]> {
    return (n.children ?? []).map(([name, node]) => ({ name, type: node.type, node }));
  }
  async readlink(n: MemNode) { return n.target ?? ''; }
  async open(n: MemNode) {
    const data = n.data ?? Buffer.alloc(0);
    return {
      size: data.length,
      async read(buf: Uint8Array, pos: number) {
        const got = Math.max(0, Math.min(buf.length, data.length - pos));
        data.copy(buf, 0, pos, pos + got);
        return got;
      },
      ...(n.holes ? { dataRanges: async () => [{ offset: data.length - 4096, length: 4096 }] } : {}),
    };
  }
  async *freeExtents() {}
}

let ino = 1;
const file = (text: string | Buffer, extra: Partial<MemNode> = {}): MemNode => ({ ino: ++ino, type: 'file', mode: 0o640, data: Buffer.from(text), ...extra });
const dir = (children: [string, MemNode][], mode = 0o750): MemNode => ({ ino: ++ino, type: 'directory', mode, children });
const link = (target: string): MemNode => ({ ino: ++ino, type: 'symlink', mode: 0o777, target });

function sample() {
  const shared = file('shared', { nlink: 2 });
  const sparse = Buffer.alloc(1024 * 1024);
  sparse.write('end', sparse.length - 10);
  const loop = dir([]);
  const root = dir([
    ['etc', dir([['hosts', file('127.0.0.1 localhost\n')], ['passwd', file('root:x:0:0\n')]])],
    ['up', link('../../../..')],
    ['abs', link('/etc/hosts')],
    ['self', link('self')],
    ['a', shared],
    ['b', shared],
    ['sparse', file(sparse, { holes: true })],
    ['..', file('dot-dot')],
    ['x/y', file('slash')],
    ['dup', file('one')],
    ['dup', file('two')],
    ['loop', loop],
    ['escape', link('/../../../tmp')],
  ]);
  loop.children = [['again', root]];
  return new Filesystem(new MemReader(root), 'mem.img');
}

test('the path walker: .. stops at the root, symlinks resolve inside the volume, loops are bounded', async () => {
  const fs = sample();
  assert.equal((await fs.resolve('/../../etc/./hosts')).path, '/etc/hosts');
  assert.equal((await fs.resolve('/up/etc/hosts')).path, '/etc/hosts');
  assert.equal((await fs.resolve('abs')).path, '/etc/hosts');
  // '/../../../tmp' from the volume's root is the volume's /tmp, never the host's.
  await assert.rejects(fs.stat('/escape'), (e: unknown) => e instanceof VdiskError && e.code === 'NOT_FOUND' && /mem\.img: \/tmp: no such/.test(e.message));
  assert.equal((await fs.lstat('/abs')).type, 'symlink');
  assert.equal((await fs.stat('/abs')).type, 'file');
  await assert.rejects(fs.stat('/self'), (e: unknown) => e instanceof VdiskError && /too many levels of symbolic links/.test(e.message));
  await assert.rejects(fs.stat('/etc/hosts/x'), (e: unknown) => e instanceof VdiskError && e.code === 'NOT_FOUND' && /not a directory/.test(e.message));
  await assert.rejects(fs.stat('/nothing'), (e: unknown) => e instanceof VdiskError && e.code === 'NOT_FOUND' && /mem\.img: \/nothing/.test(e.message));
  await assert.rejects(fs.open('/etc'), (e: unknown) => e instanceof VdiskError && /is a directory/.test(e.message));
});

test('extraction never writes outside DEST, renames unsafe names, keeps links, holes and times', async () => {
  const fs = sample();
  const base = mkdtempSync(join(tmpdir(), 'vdisk-layer-'));
  try {
    const dest = join(base, 'out');
    const warnings: string[] = [];
    const r = await extractTree(fs, '/', dest, { onWarning: (m) => warnings.push(m) });
    assert.equal(readFileSync(join(dest, 'etc', 'hosts'), 'utf8'), '127.0.0.1 localhost\n');
    assert.equal(readlinkSync(join(dest, 'up')), '../../../..');
    assert.equal(readFileSync(join(dest, '_..'), 'utf8'), 'dot-dot');
    assert.equal(readFileSync(join(dest, 'x_y'), 'utf8'), 'slash');
    assert.equal(readFileSync(join(dest, 'dup'), 'utf8'), 'one');
    assert.equal(readFileSync(join(dest, 'dup~2'), 'utf8'), 'two');
    assert.equal(lstatSync(join(dest, 'a')).ino, lstatSync(join(dest, 'b')).ino, 'hard link kept');
    assert.equal(r.hardlinks, 1);
    const sp = lstatSync(join(dest, 'sparse'));
    assert.equal(sp.size, 1024 * 1024);
    assert.ok(sp.blocks * 512 <= 64 * 1024, `sparse file stays sparse (${sp.blocks * 512} bytes allocated)`);
    assert.equal(readFileSync(join(dest, 'sparse')).subarray(-10, -7).toString(), 'end');
    assert.equal(lstatSync(join(dest, 'etc', 'hosts')).mode & 0o777, 0o640);
    assert.equal(lstatSync(join(dest, 'etc')).mode & 0o777, 0o750);
    const hostsIno = (await fs.stat('/etc/hosts')).ino;
    assert.equal(Math.round(lstatSync(join(dest, 'etc', 'hosts')).mtimeMs), (1_700_000_000 + hostsIno) * 1000 + 123);
    assert.deepEqual(readdirSync(join(dest, 'loop')), [], 'a directory linking back to the root is not entered again');
    assert.ok(warnings.some((w) => /met twice/.test(w)) && warnings.some((w) => /unsafe/.test(w)), warnings.join('\n'));
    assert.deepEqual(readdirSync(base), ['out'], 'nothing written beside DEST');
    // A second run refuses: nothing that exists is overwritten.
    await assert.rejects(extractTree(fs, '/etc', dest), /already exists/);
    await extractTree(fs, '/etc/hosts', join(base, 'hosts.txt'));
    assert.equal(readFileSync(join(base, 'hosts.txt'), 'utf8'), '127.0.0.1 localhost\n');
    writeFileSync(join(base, 'taken'), 'mine');
    await assert.rejects(extractTree(fs, '/etc/hosts', join(base, 'taken')), /already exists/);
    assert.equal(readFileSync(join(base, 'taken'), 'utf8'), 'mine');
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('tar output is read back by GNU tar with modes, links and long names', async (t) => {
  if (spawnSync('tar', ['--version']).status !== 0) return t.skip('no tar');
  const long = 'n'.repeat(150);
  const root = dir([['d', dir([[long, file('long name')]])], ['l', link('d')], ['h1', file('hh', { nlink: 2, ino: 999 })], ['h2', file('hh', { nlink: 2, ino: 999 })]]);
  const fs = new Filesystem(new MemReader(root), 'mem.img');
  const sink = new PassThrough();
  const chunks: Buffer[] = [];
  sink.on('data', (c: Buffer) => chunks.push(c));
  await tarTree(fs, '/', sink);
  const archive = Buffer.concat(chunks);
  const list = spawnSync('tar', ['-tvf', '-'], { input: archive, encoding: 'utf8' });
  assert.equal(list.status, 0, list.stderr);
  assert.match(list.stdout, new RegExp(`d/${long}`));
  assert.match(list.stdout, /^lrwxrwxrwx .* l -> d$/m);
  assert.match(list.stdout, /^hrw-r----- .* h2 link to h1$/m);
  const base = mkdtempSync(join(tmpdir(), 'vdisk-tar-'));
  try {
    const x = spawnSync('tar', ['-xf', '-', '-C', base], { input: archive });
    assert.equal(x.status, 0, String(x.stderr));
    assert.equal(readFileSync(join(base, 'd', long), 'utf8'), 'long name');
    assert.ok(existsSync(join(base, 'h2')));
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
