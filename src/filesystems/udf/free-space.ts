import type { VdiskError } from '../../errors.js';
import { EXTENT_CONTINUATION, parseShortAd, SHORT_AD_SIZE, type AllocationDescriptor } from './addresses.js';
import { parseAllocationExtent } from './allocation-extent.js';
import type { PartitionDescriptor } from './partition-descriptor.js';
import { BITMAP_HEADER, parseSpaceBitmap, parseUnallocatedSpaceEntry } from './space-bitmap.js';

/**
 * A partition's free blocks as runs, from its space bitmap (streamed: a bitmap of a large volume is
 * never held) or its unallocated space table (ECMA-167 4/14.3, 4/14.11, 4/14.12).
 */
export interface SpaceIo {
  blockSize: number;
  /** `length` bytes from logical block `block` of space `ref`, from byte `skip` of it. */
  read(ref: number, block: number, length: number, skip?: number): Promise<Buffer>;
  corrupt(what: string): VdiskError;
}

const READ_CHUNK = 4 << 20;
const MAX_RUNS = 1 << 22;
const MAX_CONTINUATIONS = 1 << 20;

/** Runs [first block, count] of set bits, streamed from the bitmap in chunks. */
export async function* bitmapRuns(io: SpaceIo, ref: number, pd: PartitionDescriptor, block: number): AsyncGenerator<[number, number]> {
  const bs = io.blockSize;
  const first = await io.read(ref, block, bs);
  const sbd = parseSpaceBitmap(first, block);
  if (typeof sbd === 'string') throw io.corrupt(`space bitmap of partition ${pd.number} at block ${block}: ${sbd}`);
  const bits = Math.min(sbd.bits, pd.length);
  const bytes = Math.ceil(bits / 8);
  if (sbd.bytes < bytes) throw io.corrupt(`space bitmap of partition ${pd.number}: ${sbd.bytes} bytes for ${sbd.bits} bits`);
  let start = -1;
  for (let pos = 0; pos < bytes; pos += READ_CHUNK) {
    const n = Math.min(READ_CHUNK, bytes - pos);
    const chunk = await io.read(ref, block, n, BITMAP_HEADER + pos);
    for (let i = 0; i < n; i++) {
      const byte = chunk[i];
      const base = (pos + i) * 8;
      if (byte === 0xff && start >= 0 && base + 8 <= bits) continue;
      if (byte === 0 && start < 0) continue;
      for (let k = 0; k < 8 && base + k < bits; k++) {
        const free = (byte >> k) & 1;
        if (free && start < 0) start = base + k;
        else if (!free && start >= 0) {
          yield [start, base + k - start];
          start = -1;
        }
      }
    }
  }
  if (start >= 0) yield [start, bits - start];
}

/** Runs from an unallocated space entry and its continuation extents, sorted and merged. */
export async function* tableRuns(io: SpaceIo, ref: number, pd: PartitionDescriptor, block: number): AsyncGenerator<[number, number]> {
  const bs = io.blockSize;
  const what = `unallocated space entry of partition ${pd.number}`;
  const use = parseUnallocatedSpaceEntry(await io.read(ref, block, bs), block);
  if (typeof use === 'string') throw io.corrupt(`${what} at block ${block}: ${use}`);
  const runs: [number, number][] = [];
  let list = use;
  for (let hops = 0; ; hops++) {
    let next: AllocationDescriptor | null = null;
    for (const ad of list) {
      if (ad.kind === EXTENT_CONTINUATION) {
        next = ad;
        break;
      }
      if (runs.length >= MAX_RUNS) throw io.corrupt(`${what}: more than ${MAX_RUNS} extents`);
      const count = Math.floor(ad.length / bs);
      if (ad.block + count > pd.length) throw io.corrupt(`${what}: free extent at block ${ad.block} runs past the partition`);
      if (count > 0) runs.push([ad.block, count]);
    }
    if (!next) break;
    if (hops >= MAX_CONTINUATIONS) throw io.corrupt(`${what}: more than ${MAX_CONTINUATIONS} allocation extents`);
    const d = await io.read(ref, next.block, bs);
    const aed = parseAllocationExtent(d, next.block);
    if (typeof aed === 'string') throw io.corrupt(`${what}: allocation extent at block ${next.block}: ${aed}`);
    list = [];
    for (let at = aed.adOffset; at + SHORT_AD_SIZE <= aed.adOffset + aed.adLength; at += SHORT_AD_SIZE) {
      const ad = parseShortAd(d, at);
      if (ad.length === 0) break;
      list.push(ad);
    }
  }
  runs.sort((a, b) => a[0] - b[0]);
  let cur: [number, number] | null = null;
  for (const r of runs) {
    if (cur && r[0] <= cur[0] + cur[1]) cur[1] = Math.max(cur[1], r[0] + r[1] - cur[0]);
    else {
      if (cur) yield cur;
      cur = [r[0], r[1]];
    }
  }
  if (cur) yield cur;
}
