import type { VolumeReader } from '../types.js';

/**
 * A small read-ahead cache of aligned volume chunks for small reads. ISO writers lay the files of a
 * directory out one after another, so extracting a tree of small files reads a run of neighbouring
 * sectors: one chunk read then serves dozens of files instead of one I/O round trip each. Bounded:
 * MAX_CHUNKS chunks at most, least recently used dropped.
 */
const CHUNK = 256 * 1024;
const MAX_CHUNKS = 32;

export class ChunkCache {
  private readonly volume: VolumeReader;
  private readonly chunks = new Map<number, Promise<Buffer>>();

  constructor(volume: VolumeReader) {
    this.volume = volume;
  }

  /** Whether a read of `length` bytes should go through the cache rather than straight to the volume. */
  static wants(length: number): boolean {
    return length <= CHUNK / 4;
  }

  private chunk(index: number): Promise<Buffer> {
    let p = this.chunks.get(index);
    if (p) {
      this.chunks.delete(index);
    } else {
      p = this.volume.read(index * CHUNK, CHUNK);
      // A failed read is not kept: the next request tries again.
      p.catch(() => this.chunks.delete(index));
    }
    this.chunks.set(index, p);
    if (this.chunks.size > MAX_CHUNKS) this.chunks.delete(this.chunks.keys().next().value as number);
    return p;
  }

  /** Copies `buf.length` bytes of the volume from `offset` into `buf` (zeros past the end). */
  async readInto(buf: Uint8Array, offset: number): Promise<void> {
    let done = 0;
    while (done < buf.length) {
      const at = offset + done;
      const index = Math.floor(at / CHUNK);
      const data = await this.chunk(index);
      const from = at - index * CHUNK;
      const n = Math.min(buf.length - done, CHUNK - from);
      buf.set(data.subarray(from, from + n), done);
      done += n;
    }
  }
}
