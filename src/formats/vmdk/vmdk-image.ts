import { dirname, isAbsolute, join } from 'node:path';
import { VdiskError, unsupported } from '../../errors.js';
import type { PositionalFile } from '../../io/file.js';
import { checkRange, mergeExtents, type DiskImage, type Extent } from '../image.js';
import type { FormatDetails, Mapping } from '../driver.js';
import type { Descriptor } from './descriptor.js';
import { FlatExtent, type ExtentRun, type VmdkExtent } from './extent.js';
import { SparseExtent } from './sparse-extent.js';
import { SparseWriter } from './sparse-writer.js';
import { vmdkDetails } from './details.js';

/** An extent placed in the virtual disk. */
export interface PlacedExtent {
  start: number;
  length: number;
  extent: VmdkExtent;
  /** The descriptor's type for it ('' for a sparse file opened directly, as QEMU shows it). */
  type: string;
}

/** Runs of the virtual disk, with the extent that stores each. */
interface DiskRun extends ExtentRun {
  placed: PlacedExtent;
}

export class VmdkImage implements DiskImage {
  readonly format = 'vmdk' as const;
  readonly logicalSectorSize = 512;
  readonly virtualSize: number;
  readonly preferredChunk: number;
  private parent: Promise<DiskImage | null> | null = null;
  private readonly writers = new Map<SparseExtent, SparseWriter>();
  private queue: Promise<void> = Promise.resolve();

  constructor(
    readonly file: PositionalFile,
    readonly descriptor: Descriptor,
    readonly extents: PlacedExtent[],
    /** The other files this image opened (extents), closed with it. */
    private readonly extentFiles: PositionalFile[],
    private readonly openParent: ((path: string) => Promise<DiskImage>) | null,
  ) {
    const last = extents[extents.length - 1];
    this.virtualSize = last ? last.start + last.length : 0;
    const sparse = extents.find((e) => e.extent instanceof SparseExtent)?.extent as SparseExtent | undefined;
    this.preferredChunk = Math.max(sparse?.grainBytes ?? 0, 1024 * 1024);
    this.flatOnly = extents.every((e) => e.extent instanceof FlatExtent);
  }

  private readonly flatOnly: boolean;

  get filename(): string {
    return this.file.path;
  }

  get otherFiles(): string[] {
    return this.extentFiles.map((f) => f.path);
  }

  /** The parent's path as the descriptor names it, resolved against this image's directory. */
  get parentPath(): string | null {
    const hint = this.descriptor.parentFileNameHint;
    if (hint === null) return null;
    return isAbsolute(hint) ? hint : join(dirname(this.filename), hint);
  }

  backingImage(): Promise<DiskImage | null> {
    if (!this.parent) {
      const path = this.parentPath;
      this.parent = path && this.openParent ? this.openParent(path) : Promise.resolve(null);
      this.parent.catch(() => { this.parent = null; });
    }
    return this.parent;
  }

  private async diskRuns(offset: number, length: number): Promise<DiskRun[]> {
    const out: DiskRun[] = [];
    const end = offset + length;
    for (const placed of this.extents) {
      const from = Math.max(offset, placed.start);
      const to = Math.min(end, placed.start + placed.length);
      if (from >= to) continue;
      for (const r of await placed.extent.runs(from - placed.start, to - from)) {
        out.push({ ...r, offset: r.offset + placed.start, placed });
      }
    }
    return out;
  }

  async read(buf: Uint8Array, offset: number): Promise<void> {
    checkRange(this, offset, buf.length);
    const runs = await this.diskRuns(offset, buf.length);
    await Promise.all(runs.map(async (r) => {
      const part = buf.subarray(r.offset - offset, r.offset - offset + r.length);
      if (r.kind === 'data') {
        await r.placed.extent.readData(part, { ...r, offset: r.offset - r.placed.start }, r.offset - r.placed.start);
      } else if (r.kind === 'unallocated' && r.placed.extent.kind === 'sparse') {
        const parent = await this.backingImage();
        if (parent) await readParent(parent, part, r.offset);
        else part.fill(0);
      } else {
        part.fill(0);
      }
    }));
  }

  async blockStatus(offset: number, length: number): Promise<Extent[]> {
    checkRange(this, offset, length);
    const out: Extent[] = [];
    for (const r of await this.diskRuns(offset, length)) {
      if (r.kind === 'unallocated') {
        const parent = await this.backingImage();
        if (parent) {
          for (const e of await parent.blockStatus(r.offset, Math.max(0, Math.min(r.length, parent.virtualSize - r.offset)))) {
            out.push({ offset: e.offset, length: e.length, state: e.state === 'data' ? 'data' : 'zero' });
          }
          if (r.offset + r.length > parent.virtualSize) {
            const from = Math.max(r.offset, parent.virtualSize);
            out.push({ offset: from, length: r.offset + r.length - from, state: 'zero' });
          }
          continue;
        }
      }
      out.push({ offset: r.offset, length: r.length, state: r.kind });
    }
    return mergeExtents(out.filter((e) => e.length > 0));
  }

  async mapping(offset: number, length: number): Promise<Mapping[]> {
    checkRange(this, offset, length);
    const parent = await this.backingImage();
    return (await this.diskRuns(offset, length)).map((r) => {
      const m: Mapping = { offset: r.offset, length: r.length, kind: r.kind === 'unallocated' && parent ? 'backing' : r.kind };
      if (r.fileOffset !== undefined) m.fileOffset = r.fileOffset;
      const name = r.placed.extent.filename;
      if (r.kind === 'data' && name && name !== this.filename) m.filename = name;
      return m;
    });
  }

  describe(): Promise<FormatDetails> {
    return vmdkDetails(this);
  }

  async write(buf: Uint8Array, offset: number): Promise<void> {
    checkRange(this, offset, buf.length);
    if (this.file.mode !== 'rw') throw new VdiskError('IO', `${this.filename}: opened read-only`);
    // Flat extents have every sector in place: their writes may run side by side.
    if (this.flatOnly) return this.writeNow(buf, offset);
    // One write at a time: two writes into one new grain must not allocate it twice.
    const run = this.queue.then(() => this.writeNow(buf, offset));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async writeNow(buf: Uint8Array, offset: number): Promise<void> {
    const end = offset + buf.length;
    for (const placed of this.extents) {
      const from = Math.max(offset, placed.start);
      const to = Math.min(end, placed.start + placed.length);
      if (from >= to) continue;
      const part = buf.subarray(from - offset, to - offset);
      const e = placed.extent;
      if (e.kind === 'zero') throw unsupported(this.filename, 'a write into a ZERO extent');
      if (e instanceof SparseExtent) {
        await this.writerOf(e).write(part, from - placed.start, async (b, at) => {
          const parent = await this.backingImage();
          if (parent) await readParent(parent, b, at + placed.start);
          else b.fill(0);
        });
      } else if (e instanceof FlatExtent) {
        await e.writeData(part, from - placed.start);
      }
    }
  }

  private writerOf(e: SparseExtent): SparseWriter {
    let w = this.writers.get(e);
    if (!w) {
      if (e.compressed) throw unsupported(this.filename, 'writing into a compressed (streamOptimized) extent; convert it to another subformat first');
      w = new SparseWriter(e);
      this.writers.set(e, w);
    }
    return w;
  }

  async flush(): Promise<void> {
    await this.queue;
    for (const w of this.writers.values()) await w.commit();
    for (const f of [this.file, ...this.extentFiles]) if (f.mode === 'rw') await f.flush();
  }

  async close(): Promise<void> {
    try {
      if (this.file.mode === 'rw') await this.flush();
    } finally {
      const parent = this.parent ? await this.parent.catch(() => null) : null;
      await parent?.close();
      for (const f of this.extentFiles) await f.close();
      await this.file.close();
    }
  }
}

/** Reads a parent's bytes; past the end of a shorter parent the disk reads as zeros. */
async function readParent(parent: DiskImage, buf: Uint8Array, offset: number): Promise<void> {
  const inside = Math.max(0, Math.min(buf.length, parent.virtualSize - offset));
  if (inside > 0) await parent.read(buf.subarray(0, inside), offset);
  buf.fill(0, inside);
}
