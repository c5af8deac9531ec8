import { promisify } from 'node:util';
import { deflate } from 'node:zlib';
import { rangeIsZero } from '../../io/buffers.js';
import type { PositionalFile } from '../../io/file.js';
import type { DiskImage } from '../image.js';
import {
  COMPRESSION_DEFLATE, DEFAULT_GRAIN_SECTORS, DESCRIPTOR_SECTORS, FLAG_COMPRESSED, FLAG_MARKERS, FLAG_NL_DETECT, GD_AT_END,
  MARKER_EOS, MARKER_FOOTER, MARKER_GD, MARKER_GT, MAX_GTES_PER_GT, SECTOR,
} from './constants.js';
import { serializeSparseHeader, type SparseHeader } from './header.js';
import { serializeGrain, serializeMetadataMarker } from './marker.js';
import { descriptorSectors, sparseDescriptor, type VmdkCreateOptions } from './create.js';

const deflateAsync = promisify(deflate);

/** Grains being compressed at once: zlib runs them on libuv's pool, so every core works. */
const IN_FLIGHT = 32;
/** Source bytes read at a time. */
const READ_CHUNK = 2 * 1024 * 1024;
/** Sectors before the first grain, as VMware lays a stream out. */
const OVERHEAD = 128;

/**
 * Writes a streamOptimized disk in one pass, in the order VMware's streams have: header (directory
 * "at the end"), descriptor, compressed grains each behind its marker, each grain table after its
 * grains, the grain directory, the footer (a header copy that says where the directory is) and the
 * end-of-stream marker. Only grains holding a non-zero byte are stored.
 */
export async function writeStream(
  file: PositionalFile,
  o: VmdkCreateOptions,
  source: DiskImage | null,
  onProgress?: (done: number, total: number) => void,
): Promise<void> {
  const grainSectors = DEFAULT_GRAIN_SECTORS;
  const gb = grainSectors * SECTOR;
  const gtes = MAX_GTES_PER_GT;
  const gtSectors = (gtes * 4) / SECTOR;
  const gtCount = Math.ceil(o.capacitySectors / (grainSectors * gtes));
  const gdSectors = Math.ceil((gtCount * 4) / SECTOR);
  const header: SparseHeader = {
    version: 3,
    flags: FLAG_NL_DETECT | FLAG_COMPRESSED | FLAG_MARKERS,
    capacity: BigInt(o.capacitySectors),
    grainSize: BigInt(grainSectors),
    descriptorOffset: 1n,
    descriptorSize: BigInt(DESCRIPTOR_SECTORS),
    numGTEsPerGT: gtes,
    rgdOffset: 0n,
    gdOffset: GD_AT_END,
    overHead: BigInt(OVERHEAD),
    uncleanShutdown: 0,
    compressAlgorithm: COMPRESSION_DEFLATE,
  };
  const text = sparseDescriptor(o, 'streamOptimized', null);
  await file.writeAt(serializeSparseHeader(header), 0);
  await file.writeAt(descriptorSectors(file.path, text, DESCRIPTOR_SECTORS), SECTOR);

  let at = OVERHEAD; // next free sector
  const gd = new Uint32Array(gtCount);
  let table: Uint32Array | null = null;
  let tableIndex = -1;
  const writeTable = async () => {
    if (!table) return;
    await file.writeAt(serializeMetadataMarker(MARKER_GT, gtSectors), at * SECTOR);
    gd[tableIndex] = at + 1;
    await file.writeAt(entries(table), (at + 1) * SECTOR);
    at += 1 + gtSectors;
    table = null;
  };
  const put = async (grain: number, compressed: Buffer) => {
    const t = Math.floor(grain / gtes);
    if (t !== tableIndex) {
      await writeTable();
      tableIndex = t;
      table = new Uint32Array(gtes);
    }
    const stored = serializeGrain(grain * grainSectors, compressed);
    await file.writeAt(stored, at * SECTOR);
    table![grain % gtes] = at;
    at += stored.length / SECTOR;
  };

  if (source) {
    const pending: { grain: number; data: Promise<Buffer> }[] = [];
    const drain = async (keep: number) => {
      while (pending.length > keep) {
        const p = pending.shift()!;
        await put(p.grain, await p.data);
      }
    };
    const total = source.virtualSize;
    for await (const { grain, data } of dataGrains(source, gb)) {
      pending.push({ grain, data: deflateAsync(data) });
      // A rejected promise waiting in the queue must not be reported as unhandled.
      pending[pending.length - 1].data.catch(() => undefined);
      await drain(IN_FLIGHT);
      onProgress?.(Math.min(total, (grain + 1) * gb), total);
    }
    await drain(0);
    onProgress?.(total, total);
  }
  await writeTable();

  await file.writeAt(serializeMetadataMarker(MARKER_GD, gdSectors), at * SECTOR);
  const gdSector = at + 1;
  const gdBytes = Buffer.alloc(gdSectors * SECTOR);
  entries(gd).copy(gdBytes);
  await file.writeAt(gdBytes, gdSector * SECTOR);
  at = gdSector + gdSectors;
  await file.writeAt(serializeMetadataMarker(MARKER_FOOTER, 1), at * SECTOR);
  await file.writeAt(serializeSparseHeader({ ...header, gdOffset: BigInt(gdSector) }), (at + 1) * SECTOR);
  await file.writeAt(serializeMetadataMarker(MARKER_EOS, 0), (at + 2) * SECTOR);
  await file.flush();
}

function entries(t: Uint32Array): Buffer {
  const b = Buffer.alloc(t.length * 4);
  for (let i = 0; i < t.length; i++) b.writeUInt32LE(t[i], i * 4);
  return b;
}

/** The source's grains holding a non-zero byte, in order (the last one zero-padded to a whole grain). */
async function* dataGrains(source: DiskImage, gb: number): AsyncGenerator<{ grain: number; data: Buffer }> {
  const size = source.virtualSize;
  let next = 0; // first grain not yet looked at
  for (let pos = 0; pos < size; ) {
    const window = Math.min(size - pos, 1024 ** 3);
    for (const e of await source.blockStatus(pos, window)) {
      if (e.state !== 'data') continue;
      const first = Math.max(next, Math.floor(e.offset / gb));
      const end = Math.ceil((e.offset + e.length) / gb);
      for (let g = first; g < end; ) {
        const count = Math.min(end - g, READ_CHUNK / gb);
        const from = g * gb;
        const buf = Buffer.alloc(count * gb);
        await source.read(buf.subarray(0, Math.min(buf.length, size - from)), from);
        for (let i = 0; i < count; i++) {
          if (!rangeIsZero(buf, i * gb, (i + 1) * gb)) yield { grain: g + i, data: buf.subarray(i * gb, (i + 1) * gb) };
        }
        g += count;
      }
      next = Math.max(next, end);
    }
    pos += window;
  }
}
