import type { VolumeReader } from '../types.js';

/**
 * The File Allocation Table (specification section 4): one 32-bit entry per cluster, holding the next
 * cluster of a chain, 0xFFFFFFF7 for a bad cluster or 0xFFFFFFFF for the end of a chain (4.1.2). Entries
 * are read in chunks through a small LRU cache, so a chain walk costs one read per 64 Ki clusters and the
 * memory stays bounded whatever the volume's size.
 */

export const FAT_END_OF_CHAIN = 0xffffffff;
export const FAT_BAD_CLUSTER = 0xfffffff7;

const CHUNK_BYTES = 256 * 1024;
const CHUNK_ENTRIES = CHUNK_BYTES / 4;
const MAX_CACHED_CHUNKS = 32;

export class FatTable {
  private readonly volume: VolumeReader;
  /** Byte offset of the active FAT in the volume. */
  private readonly offset: number;
  /** Entries in the FAT: the cluster count plus the two reserved entries. */
  private readonly entries: number;
  private readonly chunks = new Map<number, Buffer>();
  private readonly loading = new Map<number, Promise<Buffer>>();

  constructor(volume: VolumeReader, offset: number, clusterCount: number) {
    this.volume = volume;
    this.offset = offset;
    this.entries = clusterCount + 2;
  }

  /**
   * The entry of `cluster` (which the caller has checked is in 2..ClusterCount+1): a number at once when
   * its chunk is cached, else a promise. Chain walks take the synchronous path for all but one entry per chunk.
   */
  entry(cluster: number): number | Promise<number> {
    const index = Math.floor(cluster / CHUNK_ENTRIES);
    const chunk = this.chunks.get(index);
    if (chunk) {
      if (this.chunks.size > 1) {
        // Most recently used last, so that eviction takes the oldest.
        this.chunks.delete(index);
        this.chunks.set(index, chunk);
      }
      return chunk.readUInt32LE((cluster % CHUNK_ENTRIES) * 4);
    }
    return this.load(index).then((c) => c.readUInt32LE((cluster % CHUNK_ENTRIES) * 4));
  }

  private load(index: number): Promise<Buffer> {
    let p = this.loading.get(index);
    if (!p) {
      const first = index * CHUNK_ENTRIES;
      const count = Math.min(CHUNK_ENTRIES, this.entries - first);
      p = this.volume.read(this.offset + first * 4, count * 4).then((buf) => {
        this.loading.delete(index);
        if (this.chunks.size >= MAX_CACHED_CHUNKS) this.chunks.delete(this.chunks.keys().next().value as number);
        this.chunks.set(index, buf);
        return buf;
      }, (err) => {
        this.loading.delete(index);
        throw err;
      });
      this.loading.set(index, p);
    }
    return p;
  }
}
