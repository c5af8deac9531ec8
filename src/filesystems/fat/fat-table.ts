import { VdiskError } from '../../errors.js';
import type { ByteRange } from '../filesystem.js';
import type { VolumeReader } from '../types.js';
import { BAD_CLUSTER, type FatLayout } from './boot-sector.js';

/** Bytes of FAT read and cached at a time: 32768 FAT32 entries. */
const PIECE = 128 * 1024;
/** Pieces kept (16 MiB): a FAT32 FAT can be hundreds of MiB, so it is never held whole. */
const MAX_PIECES = 128;
/** Bytes of FAT read at a time by the one pass that finds the free clusters. */
const SCAN = 4 * 1024 * 1024;

/** A chain as runs of consecutive clusters: `starts[i]` and the `counts[i]` clusters after it. */
export interface ClusterRuns {
  starts: number[];
  counts: number[];
  clusters: number;
}

/** How a chain ended: at an end-of-chain mark, or at the cluster limit the caller gave. */
export interface Chain extends ClusterRuns {
  ended: 'end' | 'limit';
}

/**
 * The file allocation table (fatgen103 section 4): entry N says what follows cluster N. 12-bit
 * entries are packed two in three bytes (section 4.2); FAT32 entries use their low 28 bits. The FAT
 * is read in bounded pieces through a small LRU cache.
 */
export class FatTable {
  private readonly pieces = new Map<number, Buffer>();
  /** Pieces being read, so that chains walked at the same time read each piece once. */
  private readonly loading = new Map<number, Promise<Buffer>>();
  private readonly bad: number;

  constructor(
    private readonly volume: VolumeReader,
    readonly layout: FatLayout,
    private readonly name: string,
  ) {
    this.bad = BAD_CLUSTER[layout.bits];
  }

  /** Bytes of the FAT that hold entries 0 .. clusterCount + 1. */
  private get usedBytes(): number {
    return Math.ceil(((this.layout.clusterCount + 2) * this.layout.bits) / 8);
  }

  private async piece(index: number): Promise<Buffer> {
    const hit = this.pieces.get(index);
    if (hit) {
      this.pieces.delete(index);
      this.pieces.set(index, hit);
      return hit;
    }
    let pending = this.loading.get(index);
    if (!pending) {
      pending = this.readPiece(index).finally(() => this.loading.delete(index));
      this.loading.set(index, pending);
    }
    const buf = await pending;
    if (!this.pieces.has(index)) {
      if (this.pieces.size >= MAX_PIECES) this.pieces.delete(this.pieces.keys().next().value as number);
      this.pieces.set(index, buf);
    }
    return buf;
  }

  private readPiece(index: number): Promise<Buffer> {
    // FAT12 entries straddle byte boundaries, but a FAT12 FAT is at most 6 KiB: one piece holds it.
    const size = this.layout.bits === 12 ? this.usedBytes : PIECE;
    const at = index * size;
    return this.volume.read(this.layout.fatOffset + at, Math.min(size, this.usedBytes - at));
  }

  private entryIn(buf: Buffer, cluster: number, pieceStart: number): number {
    switch (this.layout.bits) {
      case 12: {
        const at = Math.floor((cluster * 3) / 2);
        const v = buf.readUInt16LE(at);
        return cluster & 1 ? v >> 4 : v & 0xfff;
      }
      case 16:
        return buf.readUInt16LE(cluster * 2 - pieceStart);
      default:
        return buf.readUInt32LE(cluster * 4 - pieceStart) & 0x0fffffff;
    }
  }

  private pieceOf(cluster: number): number {
    return this.layout.bits === 12 ? 0 : Math.floor((cluster * this.layout.bits) / 8 / PIECE);
  }

  /** Entry `cluster` of the FAT (the caller keeps it within 0 .. clusterCount + 1). */
  async entry(cluster: number): Promise<number> {
    const index = this.pieceOf(cluster);
    return this.entryIn(await this.piece(index), cluster, index * PIECE);
  }

  /** The entry when its piece is cached, else -1: lets long chains be walked without a promise per cluster. */
  private cachedEntry(cluster: number): number {
    const index = this.pieceOf(cluster);
    const buf = this.pieces.get(index);
    return buf ? this.entryIn(buf, cluster, index * PIECE) : -1;
  }

  /**
   * Whether the chain from `start` is exactly `count` consecutive clusters and then its end, decided
   * from cached FAT pieces alone: null when a piece is not cached (then `chain` reads and words it).
   */
  contiguousNow(start: number, count: number): boolean | null {
    if (!this.isCluster(start) || !this.isCluster(start + count - 1)) return false;
    for (let i = 0; i < count; i++) {
      const next = this.cachedEntry(start + i);
      if (next < 0) return null;
      if (i === count - 1 ? !this.isEnd(next) : next !== start + i + 1) return false;
    }
    return true;
  }

  isCluster(n: number): boolean {
    return n >= 2 && n <= this.layout.clusterCount + 1;
  }

  isEnd(v: number): boolean {
    return v > this.bad;
  }

  /** Byte offset of a data cluster from the volume's start. */
  clusterOffset(cluster: number): number {
    return this.layout.dataOffset + (cluster - 2) * this.layout.clusterSize;
  }

  /**
   * Follows the chain from `start` for at most `limit` clusters, as runs of consecutive clusters.
   * A free, bad or out-of-range link is corruption; so is a chain that comes back to a cluster it
   * has already passed (found by overlapping runs, so the walk costs no per-cluster memory).
   */
  async chain(start: number, limit: number, what: string): Promise<Chain> {
    const fail = (msg: string) => new VdiskError('CORRUPT', `${this.name}: ${what}: ${msg}`);
    if (!this.isCluster(start)) throw fail(`first cluster ${start} is outside the volume's ${this.layout.clusterCount} clusters`);
    const starts: number[] = [];
    const counts: number[] = [];
    let cluster = start;
    let clusters = 0;
    let ended: 'end' | 'limit' = 'limit';
    while (clusters < limit) {
      const last = starts.length - 1;
      if (last >= 0 && starts[last] + counts[last] === cluster) counts[last]++;
      else {
        starts.push(cluster);
        counts.push(1);
      }
      clusters++;
      let next = this.cachedEntry(cluster);
      if (next < 0) next = await this.entry(cluster);
      if (this.isEnd(next)) {
        ended = 'end';
        break;
      }
      if (next === 0) throw fail(`cluster chain runs into free cluster ${cluster} -> 0`);
      if (next === this.bad) throw fail(`cluster chain runs into bad cluster ${cluster} -> bad`);
      if (!this.isCluster(next)) throw fail(`cluster chain links cluster ${cluster} to ${next}, outside the volume's ${this.layout.clusterCount} clusters`);
      if (next === cluster) throw fail(`cluster chain loops back to cluster ${cluster}`);
      cluster = next;
    }
    const loop = firstOverlap(starts, counts);
    if (loop !== null) throw fail(`cluster chain loops back to cluster ${loop}`);
    return { starts, counts, clusters, ended };
  }

  /** The free clusters (entry 0) as byte ranges of the volume, merged and in order, read piece by piece. */
  async *freeExtents(): AsyncGenerator<ByteRange> {
    const { clusterCount, clusterSize, bits } = this.layout;
    const perScan = bits === 12 ? clusterCount + 2 : (SCAN * 8) / bits;
    let runStart = -1;
    let runEnd = -1;
    for (let first = 0; first < clusterCount + 2; first += perScan) {
      // Large reads outside the cache: one pass over a large FAT would only evict the pieces in use.
      const at = bits === 12 ? 0 : (first * bits) / 8;
      const buf = await this.volume.read(this.layout.fatOffset + at, Math.min(bits === 12 ? this.usedBytes : SCAN, this.usedBytes - at));
      const end = Math.min(first + perScan, clusterCount + 2);
      for (let c = Math.max(first, 2); c < end; c++) {
        if (this.entryIn(buf, c, at) !== 0) continue;
        if (c === runEnd) runEnd++;
        else {
          if (runStart >= 0) yield { offset: this.clusterOffset(runStart), length: (runEnd - runStart) * clusterSize };
          runStart = c;
          runEnd = c + 1;
        }
      }
    }
    if (runStart >= 0) yield { offset: this.clusterOffset(runStart), length: (runEnd - runStart) * clusterSize };
  }
}

/** A cluster that two runs share, or null: the sign of a chain that loops. */
function firstOverlap(starts: number[], counts: number[]): number | null {
  if (starts.length < 2) return null;
  const order = starts.map((_, i) => i).sort((a, b) => starts[a] - starts[b]);
  let end = -1;
  for (const i of order) {
    if (starts[i] < end) return starts[i];
    end = Math.max(end, starts[i] + counts[i]);
  }
  return null;
}
