import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { needPeers, tempDir, sh } from './helpers/peers.js';
import { makeHpfs } from './helpers/handmade.js';
import { detectFilesystem } from '../src/index.js';
import { memoryVolume } from './helpers/memory.js';

const MiB = 1024 * 1024;


test('hostile boot sectors and superblocks never hang or throw', async (t) => {
  if (!needPeers(t, 'mkfs.vfat', 'mkfs.exfat', 'mkfs.ext4', 'mkntfs', 'genisoimage', 'mkudffs', 'mkfs.f2fs')) return;
  const dir = tempDir(t);
  const img = (name: string, size: number, make: (p: string) => void) => {
    const p = join(dir, name);
    sh('truncate', ['-s', String(size), p]);
    make(p);
    return readFileSync(p);
  };
  mkdirSync(join(dir, 'tree'));
  writeFileSync(join(dir, 'tree', 'a'), 'a');
  const bases = [
    img('fat32.img', 40 * MiB, (p) => sh('mkfs.vfat', ['-F', '32', '-n', 'X', p])),
    img('fat12.img', 2 * MiB, (p) => sh('mkfs.vfat', ['-F', '12', '-n', 'Y', p])),
    img('exfat.img', 16 * MiB, (p) => sh('mkfs.exfat', ['-L', 'E', p])),
    img('ext4.img', 16 * MiB, (p) => sh('mkfs.ext4', ['-q', '-L', 'e', p])),
    img('ntfs.img', 16 * MiB, (p) => sh('mkntfs', ['-q', '-F', '-f', '-L', 'n', p])),
    img('udf.img', 8 * MiB, (p) => sh('mkudffs', ['--label=u', p])),
    img('f2fs.img', 64 * MiB, (p) => sh('mkfs.f2fs', ['-q', p])),
    img('iso.img', 0, (p) => sh('genisoimage', ['-quiet', '-J', '-o', p, join(dir, 'tree')])),
    img('hpfs.img', 0, (p) => makeHpfs(p, 'H', 1)),
  ];
  // Where each keeps what its parser decides on.
  const hot = [[0, 512], [1024, 1024], [32768, 4096], [65536, 4096], [256 * 2048, 512], [16 * 512, 1024]];
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: bases.length - 1 }),
      fc.array(fc.record({ region: fc.nat(), pos: fc.nat(), wide: fc.boolean(), value: fc.oneof(fc.constantFrom(0, 0xff, 0xffffffff, 0x80000000, 1, 2, 0x29), fc.integer({ min: 0, max: 0xffffffff })) }), { minLength: 1, maxLength: 10 }),
      async (which, edits) => {
        const buf = Buffer.from(bases[which]);
        for (const e of edits) {
          const [start, len] = hot[e.region % hot.length];
          if (start + len > buf.length) continue;
          const at = start + (e.pos % (len - 4));
          if (e.wide) buf.writeUInt32LE(e.value >>> 0, at);
          else buf[at] = e.value & 0xff;
        }
        const started = Date.now();
        const d = await detectFilesystem(memoryVolume(buf));
        assert.ok(Date.now() - started < 2000, 'finishes promptly');
        if (d.info?.size !== undefined) assert.ok(Number.isFinite(d.info.size));
        if (d.info?.label !== undefined) assert.equal(typeof d.info.label, 'string');
      },
    ),
    { numRuns: 500, seed: Number(process.env.FC_SEED ?? 11) },
  );
});
