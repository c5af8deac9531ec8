import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { crc32 } from '@node-rs/crc32';
import { needPeers, tempDir, sh } from './helpers/peers.js';
import { readPartitionTable, VdiskError, type DiskImage } from '../src/index.js';

const MiB = 1024 * 1024;

/** A disk held in memory, behind the same interface the partition code reads through. */
function memoryDisk(buf: Buffer): DiskImage {
  return {
    format: 'raw',
    filename: 'memory',
    virtualSize: buf.length,
    logicalSectorSize: 512,
    preferredChunk: MiB,
    async read(out, offset) {
      out.set(buf.subarray(offset, offset + out.length));
    },
    async write() {
      throw new Error('read-only');
    },
    async flush() {},
    async blockStatus(offset, length) {
      return [{ offset, length, state: 'data' }];
    },
    async close() {},
  };
}

test('mutated MBR, EBR, GPT and BSD structures never hang or throw untyped errors', async (t) => {
  if (!needPeers(t, 'sfdisk', 'sgdisk', 'fdisk')) return;
  const dir = tempDir(t);
  const mk = (name: string) => {
    const p = join(dir, name);
    sh('truncate', ['-s', String(16 * MiB), p]);
    return p;
  };
  const mbr = mk('mbr.img');
  sh('sfdisk', ['-q', mbr], Buffer.from('label: dos\n,2M,83\n,,5\n,2M,83\n,2M,83\n,2M,83\n'));
  const gpt = mk('gpt.img');
  sh('sgdisk', ['-n', '1:2048:+2M', '-n', '2:0:+2M', '-c', '2:x', gpt]);
  const bsd = mk('bsd.img');
  sh('sfdisk', ['-q', bsd], Buffer.from('label: dos\n,1M,83\n,12M,a5\n'));
  sh('fdisk', [bsd], Buffer.from('b\n2\ny\nn\na\n\n+4M\nt\na\n7\nw\nq\n'));
  const bases = [readFileSync(mbr), readFileSync(gpt), readFileSync(bsd)];
  // Where each base keeps what parsers decide on: MBR + first EBRs, GPT header + entries, BSD label.
  const regions = [
    [[0, 512], [2 * MiB + MiB, 512], [2 * MiB + MiB + 2048 * 512 + 2 * MiB, 512]],
    [[0, 512], [512, 92], [1024, 512], [16 * MiB - 512, 92]],
    [[0, 512], [2 * MiB + 512, 512]],
  ];
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: 2 }),
      fc.array(fc.record({ region: fc.nat(), pos: fc.nat(), value: fc.oneof(fc.constantFrom(0, 0xff, 0xffffffff, 0x7fffffff, 1, 0x80), fc.integer({ min: 0, max: 0xffffffff })), wide: fc.boolean() }), { minLength: 1, maxLength: 8 }),
      fc.boolean(),
      async (which, edits, fixCrc) => {
        const buf = Buffer.from(bases[which]);
        for (const e of edits) {
          const [start, len] = regions[which][e.region % regions[which].length];
          const at = start + (e.pos % (len - 4));
          if (e.wide) buf.writeUInt32LE(e.value >>> 0, at);
          else buf[at] = e.value & 0xff;
        }
        if (fixCrc && which === 1) {
          // Keep the GPT header CRC right, so the checks behind it are reached.
          const h = buf.subarray(512, 512 + 92);
          h.writeUInt32LE(0, 16);
          h.writeUInt32LE(crc32(h) >>> 0, 16);
        }
        const started = Date.now();
        try {
          const table = await readPartitionTable(memoryDisk(buf));
          for (const p of table.partitions) {
            assert.ok(Number.isSafeInteger(p.start) && Number.isSafeInteger(p.size) && p.size >= 0);
          }
        } catch (err) {
          assert.ok(err instanceof VdiskError, `untyped error: ${(err as Error).stack}`);
        }
        assert.ok(Date.now() - started < 2000, 'finishes promptly');
      },
    ),
    { numRuns: 400, seed: Number(process.env.FC_SEED ?? 5) },
  );
});
