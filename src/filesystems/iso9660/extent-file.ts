import type { FsFile } from '../filesystem.js';
import type { VolumeReader } from '../types.js';
import type { WindowCache } from '../window-cache.js';

/** A run of bytes on the volume: a file section (ECMA-119 6.5.1), a directory, a continuation area. */
export interface Extent {
  /** Byte offset in the volume. */
  offset: number;
  length: number;
}

/** File reads are cut into pieces of this size, several in flight. */
const READ_PIECE = 1024 * 1024;
const READS_IN_FLIGHT = 4;

/** A file's bytes over its extents: positional reads cut into pieces, several in flight. */
export class ExtentFile implements FsFile {
  readonly size: number;
  private readonly volume: VolumeReader;
  private readonly cache: WindowCache;
  private readonly extents: Extent[];
  /** File offset where each extent starts. */
  private readonly starts: number[];

  constructor(volume: VolumeReader, cache: WindowCache, extents: Extent[], size: number) {
    this.volume = volume;
    this.cache = cache;
    this.extents = extents;
    this.size = size;
    this.starts = [];
    let at = 0;
    for (const e of extents) {
      this.starts.push(at);
      at += e.length;
    }
  }

  async read(buf: Uint8Array, position: number): Promise<number> {
    const want = Math.max(0, Math.min(buf.length, this.size - position));
    if (want === 0) return 0;
    // The common case, a small file of one extent read at once: one read, no piece list.
    if (this.extents.length === 1 && want <= READ_PIECE && position + want <= this.extents[0].length) {
      await this.cache.readInto(buf.subarray(0, want), this.extents[0].offset + position);
      return want;
    }
    const pieces: { volAt: number; bufAt: number; length: number }[] = [];
    // Binary search would do for thousands of extents; files have a handful (one per 4 GiB).
    for (let i = 0; i < this.extents.length; i++) {
      const s = this.starts[i];
      const e = this.extents[i];
      const from = Math.max(position, s);
      const to = Math.min(position + want, s + e.length);
      for (let at = from; at < to; at += READ_PIECE) {
        pieces.push({ volAt: e.offset + (at - s), bufAt: at - position, length: Math.min(READ_PIECE, to - at) });
      }
    }
    let next = 0;
    const worker = async () => {
      while (next < pieces.length) {
        const p = pieces[next++];
        const dest = buf.subarray(p.bufAt, p.bufAt + p.length);
        // Short pieces come from the cache's windows, long ones straight into the buffer.
        await this.cache.readInto(dest, p.volAt);
      }
    };
    await Promise.all(Array.from({ length: Math.min(READS_IN_FLIGHT, pieces.length) }, worker));
    return want;
  }
}
