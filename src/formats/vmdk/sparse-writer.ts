import { corrupt } from '../../errors.js';
import { SECTOR } from './constants.js';
import type { SparseExtent } from './sparse-extent.js';

/** Grain tables changed before they are written out: each covers 32 MiB of 64 KiB grains. */
const COMMIT_TABLES = 256;

/**
 * Allocating writes into a hosted sparse extent whose grain tables exist (QEMU and vdisk preallocate
 * them). New grains go to the end of the file; their table entries are written only after the grains
 * are flushed, in batches, so that a crash leaves every grain table entry pointing at old or new data.
 */
export class SparseWriter {
  constructor(private readonly e: SparseExtent) {}

  /**
   * Writes `buf` at `offset` of the extent; `base` fills a new grain's bytes the write does not cover
   * (the parent's, or zeros) from an extent offset.
   */
  async write(buf: Uint8Array, offset: number, base: (b: Uint8Array, at: number) => Promise<void>): Promise<void> {
    const e = this.e;
    const gb = e.grainBytes;
    for (const r of await e.runs(offset, buf.length)) {
      const data = buf.subarray(r.offset - offset, r.offset - offset + r.length);
      if (r.kind === 'data') {
        // A grain inside the metadata (a table entry of 1 without the zeroed-grain flag, a hostile
        // entry) would have this write overwrite the header, descriptor or tables.
        if (r.fileOffset! < Number(e.header.overHead) * SECTOR) {
          throw corrupt(e.filename, `a grain table entry points into the metadata (byte ${r.fileOffset}, before the first grain at sector ${e.header.overHead}); refusing to write there`);
        }
        await e.file.writeAt(data, r.fileOffset!);
        continue;
      }
      const g0 = Math.floor(r.offset / gb);
      const g1 = Math.ceil((r.offset + r.length) / gb);
      const span = (g1 - g0) * gb;
      let grains: Uint8Array;
      if (r.offset === g0 * gb && r.length === span) {
        grains = data;
      } else {
        grains = Buffer.alloc(span);
        const head = r.offset - g0 * gb;
        const tail = (g1 * gb) - (r.offset + r.length);
        if (r.kind === 'unallocated') {
          if (head > 0) await base(grains.subarray(0, gb), g0 * gb);
          if (tail > 0 && (g1 - 1 > g0 || head === 0)) await base(grains.subarray(span - gb), (g1 - 1) * gb);
        }
        grains.set(data, head);
      }
      const sector = e.allocSector;
      e.allocSector += (g1 - g0) * (gb / SECTOR);
      await e.file.writeAt(grains, sector * SECTOR);
      for (let g = g0; g < g1; g++) await e.gd.setEntry(g, sector + (g - g0) * (gb / SECTOR));
      if (e.gd.dirty.size >= COMMIT_TABLES) await this.commit();
    }
  }

  /** Makes the new grains durable, then writes the tables that point at them (both copies). */
  async commit(): Promise<void> {
    const e = this.e;
    if (e.gd.dirty.size === 0) return;
    await e.file.flush();
    for (const t of await e.gd.takeDirty()) {
      const bytes = Buffer.alloc(t.data.length * 4);
      t.data.forEach((v, i) => bytes.writeUInt32LE(v, i * 4));
      await e.file.writeAt(bytes, t.sector * SECTOR);
      const redundant = e.rgd ? await e.rgd.tableSector(t.index) : 0;
      if (redundant !== 0) await e.file.writeAt(bytes, redundant * SECTOR);
    }
  }
}

