import type { ByteRange, FsFile } from '../filesystem.js';
import type { ClusterChain } from './cluster-chain.js';
import { clusterOffset, corruptExfat, type ExfatLayout } from './layout.js';

/**
 * The bytes of a file, directory or system stream over its cluster chain. Bytes from the valid-data
 * length to the size were never written: they read as zeros without touching the volume (specification
 * 7.6.5), and `dataRanges` leaves them out so that a copy keeps them sparse.
 */

/** Where a stretch of the stream lies on the volume. */
export interface VolumePiece {
  /** Offset in the stream. */
  position: number;
  /** Offset in the volume. */
  offset: number;
  length: number;
}

/** Largest single read of the volume, and how many run at once: large reads, a few in flight. */
const MAX_READ = 4 * 1024 * 1024;
const IN_FLIGHT = 4;

export class ClusterStream implements FsFile {
  readonly size: number;
  readonly validLength: number;
  private readonly layout: ExfatLayout;
  private readonly chain: ClusterChain;

  /** `chain` must hold at least the clusters `size` needs; `validLength` is at most `size`. */
  constructor(layout: ExfatLayout, chain: ClusterChain, size: number, validLength: number) {
    this.layout = layout;
    this.chain = chain;
    this.size = size;
    this.validLength = validLength;
    if (chain.length * layout.clusterSize < size) {
      throw corruptExfat(layout, chain.what, `size ${size} needs more than the ${chain.length} clusters it has`);
    }
  }

  /** The volume pieces holding [position, position + length) of the stream, which must lie inside its clusters. */
  async pieces(position: number, length: number): Promise<VolumePiece[]> {
    if (length <= 0) return [];
    const cs = this.layout.clusterSize;
    const firstIndex = Math.floor(position / cs);
    const lastIndex = Math.floor((position + length - 1) / cs);
    const runs = await this.chain.runs(firstIndex, lastIndex - firstIndex + 1);
    const pieces: VolumePiece[] = [];
    let at = firstIndex * cs;
    const end = position + length;
    for (const r of runs) {
      const runEnd = at + r.count * cs;
      const start = Math.max(at, position);
      const stop = Math.min(runEnd, end);
      if (stop > start) pieces.push({ position: start, offset: clusterOffset(this.layout, r.cluster) + (start - at), length: stop - start });
      at = runEnd;
    }
    return pieces;
  }

  async read(buf: Uint8Array, position: number): Promise<number> {
    if (position >= this.size || buf.length === 0) return 0;
    const n = Math.min(buf.length, this.size - position);
    const dataEnd = Math.min(position + n, this.validLength);
    if (dataEnd > position) {
      const jobs: VolumePiece[] = [];
      for (const p of await this.pieces(position, dataEnd - position)) {
        for (let o = 0; o < p.length; o += MAX_READ) {
          jobs.push({ position: p.position + o, offset: p.offset + o, length: Math.min(MAX_READ, p.length - o) });
        }
      }
      for (let i = 0; i < jobs.length; i += IN_FLIGHT) {
        // Straight into the caller's buffer where the volume can: a fresh buffer per piece and the copy
        // out of it cost a large file as much as the read itself.
        const into = this.layout.volume.readInto?.bind(this.layout.volume);
        await Promise.all(jobs.slice(i, i + IN_FLIGHT).map(async (j) => {
          const at = j.position - position;
          if (into) return into(buf.subarray(at, at + j.length), j.offset);
          const data = await this.layout.volume.read(j.offset, j.length);
          buf.set(data.subarray(0, j.length), at);
        }));
      }
    }
    const zeroFrom = Math.max(dataEnd, position) - position;
    if (zeroFrom < n) buf.fill(0, zeroFrom, n);
    return n;
  }

  async dataRanges(): Promise<ByteRange[]> {
    const valid = Math.min(this.validLength, this.size);
    return valid > 0 ? [{ offset: 0, length: valid }] : [];
  }
}
