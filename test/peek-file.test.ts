import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { join, relative } from 'node:path';
import { mkdirSync, readFileSync, readSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { needPeers, sh, tempDir } from './helpers/peers.js';
import { openImage, openFilesystem, type Filesystem, type PeekedFile, type VolumeReader } from '../src/index.js';
import { walkTree } from '../src/ops/tree.js';

/**
 * The readers' no-wait paths (statNow, peekFile, fileRunNow with the volume's hostRange), which `vdisk
 * get` takes for most files of a tree, held against the source tree each peer's tool built the volume
 * from, and against the readers' own waiting paths (stat). A reader may decline a file; it may never
 * hand back other bytes, nor say they lie where they do not.
 */

const KiB = 1024;

/** Files of 0 to 70 KiB in a few directories, each with its own bytes; some all zeros (ext: holes). */
function makeSource(dir: string): void {
  for (let i = 0; i < 240; i++) {
    const d = join(dir, `d${i % 6}`);
    mkdirSync(d, { recursive: true });
    const size = i % 40 === 0 ? 0 : (i * 2903) % (70 * KiB);
    const data = Buffer.alloc(size);
    if (i % 23 !== 5) for (let k = 0; k < size; k++) data[k] = (k * 31 + i * 7 + (k >> 9)) & 0xff;
    writeFileSync(join(d, `f${i}.bin`), data);
  }
}

function sourceFiles(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.set('/' + relative(dir, p), readFileSync(p));
    }
  };
  walk(dir);
  return out;
}

/** peekFile as extractTree uses it: a promise is waited for and the file asked for again. */
async function peek(fs: Filesystem, node: unknown): Promise<PeekedFile | null> {
  let got = fs.reader.peekFile?.(node) ?? null;
  for (let tries = 0; got instanceof Promise && tries < 3; tries++) {
    await got;
    got = fs.reader.peekFile?.(node) ?? null;
  }
  return got instanceof Promise ? null : got;
}

async function checkVolume(image: string, source: Map<string, Buffer>, what: string, type: string): Promise<void> {
  const img = await openImage(image);
  try {
    const fs = await openFilesystem(img);
    assert.equal(fs.type, type, `${what}: the reader the volume is opened with`);
    let peeked = 0;
    let files = 0;
    let runs = 0;
    let inHost = 0;
    for await (const e of walkTree(fs, '/')) {
      const now = fs.reader.statNow?.(e.node);
      if (now) assert.deepEqual(now, await fs.reader.stat(e.node), `${what}: statNow of /${e.rel} equals stat`);
      if (e.stats.type !== 'file') continue;
      files++;
      const want = source.get(`/${e.rel}`);
      assert.ok(want, `${what}: /${e.rel} is in the source tree`);
      const run = fs.reader.fileRunNow?.(e.node) ?? null;
      if (run && run.length > 0) {
        assert.equal(run.length, want.length, `${what}: /${e.rel} run length`);
        assert.ok((await (fs.volume as VolumeReader).read(run.offset, run.length)).equals(want), `${what}: /${e.rel} bytes where its run says`);
        const where = fs.volume?.hostRange?.(run.offset, run.length) ?? null;
        if (where) {
          // Where a host writer's thread reads it: straight from the image file.
          const bytes = Buffer.alloc(run.length);
          assert.equal(readSync(where.fd, bytes, 0, run.length, where.position), run.length);
          assert.ok(bytes.equals(want), `${what}: /${e.rel} bytes in the image file where hostRange says`);
          inHost++;
        }
        runs++;
      }
      const got = await peek(fs, e.node);
      if (!got) continue;
      // Assembled as extractTree writes it: the pieces where they say, zeros elsewhere.
      const bytes = Buffer.alloc(got.size);
      for (const p of got.pieces) p.buf.copy(bytes, p.offset, p.at, p.at + p.length);
      assert.equal(got.size, want.length, `${what}: /${e.rel} size`);
      assert.ok(bytes.equals(want), `${what}: /${e.rel} bytes as the source has them`);
      peeked++;
    }
    assert.equal(files, source.size, `${what}: every source file walked`);
    // The fast path must be the usual one, or a tree's extraction loses what it was built for.
    assert.ok(peeked >= files * 0.8, `${what}: ${peeked} of ${files} files peeked`);
    const nonEmpty = [...source.values()].filter((b) => b.length > 0).length;
    assert.ok(runs >= nonEmpty * 0.8, `${what}: ${runs} of ${nonEmpty} files located in one run`);
    // Raw images and VHDX's stored blocks hand their ranges to the host writer's thread.
    assert.ok(inHost >= runs * 0.8, `${what}: ${inHost} of ${runs} runs found in the image file`);
  } finally {
    await img.close();
  }
}

/** Each peer's tool builds a volume from the source tree; `type` is the reader it must open with. */
const VOLUMES: { name: string; peers: string[]; type: string; build: (src: string, dir: string) => string }[] = [
  {
    name: 'ext4 in a VHDX (mkfs.ext4 -d, qemu-img convert)',
    peers: ['mkfs.ext4', 'qemu-img'],
    type: 'ext4',
    build: (src, dir) => {
      sh('mkfs.ext4', ['-q', '-F', '-b', '4096', '-d', src, join(dir, 'ext.raw'), '64M']);
      sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vhdx', join(dir, 'ext.raw'), join(dir, 'ext.vhdx')]);
      return join(dir, 'ext.vhdx');
    },
  },
  {
    name: 'ext4 in a GPT partition of a raw disk (sfdisk, mkfs.ext4 -d)',
    peers: ['mkfs.ext4', 'sfdisk'],
    type: 'ext4',
    build: (src, dir) => {
      const part = join(dir, 'part.raw');
      sh('mkfs.ext4', ['-q', '-F', '-b', '4096', '-d', src, part, '64M']);
      const disk = join(dir, 'disk.raw');
      sh('truncate', ['-s', '80M', disk]);
      sh('sfdisk', ['-q', disk], Buffer.from('label: gpt\nstart=2048, size=131072, type=linux\n'));
      sh('dd', [`if=${part}`, `of=${disk}`, 'bs=1M', 'seek=1', 'conv=notrunc', 'status=none']);
      return disk;
    },
  },
  {
    name: 'FAT32 (mkfs.vfat, mcopy -s)',
    peers: ['mkfs.vfat', 'mcopy'],
    type: 'vfat',
    build: (src, dir) => {
      const img = join(dir, 'fat.img');
      sh('truncate', ['-s', '64M', img]);
      sh('mkfs.vfat', ['-F', '32', img]);
      sh('mcopy', ['-s', '-m', '-i', img, ...readdirSync(src).map((n) => join(src, n)), '::/']);
      return img;
    },
  },
  {
    name: 'UDF (genisoimage -udf)',
    peers: ['genisoimage'],
    type: 'udf',
    build: (src, dir) => {
      sh('genisoimage', ['-quiet', '-udf', '-o', join(dir, 'udf.iso'), src]);
      return join(dir, 'udf.iso');
    },
  },
  {
    name: 'ISO-9660 with Rock Ridge and Joliet (xorriso)',
    peers: ['xorriso'],
    type: 'iso9660',
    build: (src, dir) => {
      sh('xorriso', ['-as', 'mkisofs', '-quiet', '-R', '-J', '-o', join(dir, 'tree.iso'), src]);
      return join(dir, 'tree.iso');
    },
  },
];

describe('statNow and peekFile against the source tree', () => {
  for (const v of VOLUMES) {
    test(v.name, async (t) => {
      if (!needPeers(t, ...v.peers)) return;
      const dir = tempDir(t);
      const src = join(dir, 'src');
      makeSource(src);
      await checkVolume(v.build(src, dir), sourceFiles(src), v.name, v.type);
    });
  }
});
