import { corrupt, VdiskError } from '../../errors.js';
import { readExact, type PositionalFile, type ByteSource } from '../../io/file.js';
import { MAX_REFTABLE_BYTES, entryOffset, roundUp, writeEntry } from './constants.js';

/** Reads refcount `i` of a block whose entries are 2^order bits wide. */
export function getRefcount(b: Buffer, i: number, order: number): number {
  switch (order) {
    case 4: return b.readUInt16BE(i * 2);
    case 3: return b[i];
    case 5: return b.readUInt32BE(i * 4);
    case 6: return b.readUInt32BE(i * 8) * 0x100000000 + b.readUInt32BE(i * 8 + 4);
    default: {
      const bits = 1 << order;
      const perByte = 8 / bits;
      return (b[Math.floor(i / perByte)] >> ((i % perByte) * bits)) & ((1 << bits) - 1);
    }
  }
}

export function setRefcount(b: Buffer, i: number, order: number, v: number): void {
  switch (order) {
    case 4: b.writeUInt16BE(v, i * 2); return;
    case 3: b[i] = v; return;
    case 5: b.writeUInt32BE(v, i * 4); return;
    case 6: writeEntry(b, i * 8, v); return;
    default: {
      const bits = 1 << order;
      const perByte = 8 / bits;
      const shift = (i % perByte) * bits;
      const at = Math.floor(i / perByte);
      b[at] = (b[at] & ~(((1 << bits) - 1) << shift)) | (v << shift);
    }
  }
}

/** Reads the refcount table (qcow2.txt "Host cluster management"), checked to lie inside the file. */
export async function readRefcountTable(src: ByteSource, offset: number, clusters: number, clusterSize: number): Promise<Float64Array> {
  const bytes = clusters * clusterSize;
  if (bytes > MAX_REFTABLE_BYTES) throw corrupt(src.path, `qcow2 refcount table of ${clusters} clusters is above QEMU's 8 MiB limit`);
  if (offset + bytes > src.size()) throw new VdiskError('TRUNCATED', `${src.path}: the qcow2 refcount table (${bytes} bytes at ${offset}) runs past the end of the file (${src.size()} bytes)`);
  const b = await readExact(src, offset, bytes, 'qcow2 refcount table');
  const t = new Float64Array(bytes / 8);
  for (let i = 0; i < t.length; i++) {
    const v = entryOffset(b, i * 8);
    if (v % clusterSize !== 0 || b.readUInt32BE(i * 8) & 0xff000000 || b.readUInt32BE(i * 8 + 4) & 0x1ff) {
      throw corrupt(src.path, `qcow2 refcount table entry ${i} (${v}) is not a cluster-aligned offset`);
    }
    t[i] = v;
  }
  return t;
}

/**
 * Refcounts of a writable image: the table and the blocks touched, changed in memory and written
 * in the order that keeps the file consistent (blocks before the table entries naming them).
 */
export class RefcountStore {
  table: Float64Array;
  tableOffset: number;
  tableClusters: number;
  readonly perBlock: number;
  private readonly blocks = new Map<number, Buffer>();
  private readonly dirty = new Set<number>();
  /** Table entries whose blocks are new; placed (given an offset) before they are written. */
  private readonly fresh = new Set<number>();
  private tableDirty = false;
  /** The table clusters given up when the table moved: freed once the header names the new one. */
  private oldTable: { offset: number; clusters: number } | null = null;

  constructor(private readonly file: PositionalFile, table: Float64Array, tableOffset: number, tableClusters: number, readonly clusterSize: number, readonly order: number) {
    this.table = table;
    this.tableOffset = tableOffset;
    this.tableClusters = tableClusters;
    this.perBlock = (clusterSize * 8) >> order;
  }

  get maxValue(): number {
    return this.order >= 6 ? Number.MAX_SAFE_INTEGER : 2 ** (1 << this.order) - 1;
  }

  private async block(index: number): Promise<Buffer | null> {
    const cached = this.blocks.get(index);
    if (cached) return cached;
    const offset = index < this.table.length ? this.table[index] : 0;
    if (offset === 0) return null;
    if (offset + this.clusterSize > this.file.size()) throw corrupt(this.file.path, `qcow2 refcount block ${index} at ${offset} is past the end of the file`);
    const b = await readExact(this.file, offset, this.clusterSize, `qcow2 refcount block ${index}`);
    if (this.blocks.size >= 256) {
      for (const k of this.blocks.keys()) if (!this.dirty.has(k) && !this.fresh.has(k)) {
        this.blocks.delete(k);
        break;
      }
    }
    this.blocks.set(index, b);
    return b;
  }

  async get(cluster: number): Promise<number> {
    const b = await this.block(Math.floor(cluster / this.perBlock));
    return b ? getRefcount(b, cluster % this.perBlock, this.order) : 0;
  }

  /** Adds `delta` to a cluster's refcount in memory (a new block where none covers it). */
  async add(cluster: number, delta: number): Promise<void> {
    const index = Math.floor(cluster / this.perBlock);
    let b = await this.block(index);
    if (!b) {
      b = Buffer.alloc(this.clusterSize);
      this.blocks.set(index, b);
      this.fresh.add(index);
    }
    const v = getRefcount(b, cluster % this.perBlock, this.order) + delta;
    if (v < 0) throw corrupt(this.file.path, `qcow2 refcount of cluster ${cluster} would drop below 0: the refcounts are corrupt (vdisk check)`);
    if (v > this.maxValue) throw new VdiskError('UNSUPPORTED', `${this.file.path}: qcow2 refcount of cluster ${cluster} would overflow ${1 << this.order} bits`);
    setRefcount(b, cluster % this.perBlock, this.order, v);
    this.dirty.add(index);
  }

  get pending(): boolean {
    return this.dirty.size > 0;
  }

  /**
   * Gives new blocks (and, when the table is too small, a new table) clusters from `alloc`; their
   * own refcounts may need further blocks, so this repeats until nothing is left to place.
   */
  async place(alloc: () => number): Promise<void> {
    for (let round = 0; round < 64; round++) {
      const fresh = [...this.fresh].filter((i) => i >= this.table.length || this.table[i] === 0);
      const needTable = fresh.some((i) => i >= this.table.length);
      if (!needTable) {
        if (fresh.length === 0) {
          this.fresh.clear();
          return;
        }
        for (const i of fresh) {
          const at = alloc();
          this.table[i] = at;
          this.tableDirty = true;
          await this.add(at / this.clusterSize, 1);
        }
        continue;
      }
      // A new, larger table, with room for the blocks its own clusters will need.
      const maxIndex = Math.max(...fresh, this.table.length - 1);
      const entries = maxIndex + 1 + Math.ceil((maxIndex + 1) / 4) + 8;
      const clusters = Math.ceil((entries * 8) / this.clusterSize);
      if (clusters * this.clusterSize > 8 * 1024 * 1024) throw new VdiskError('UNSUPPORTED', `${this.file.path}: the qcow2 refcount table would exceed 8 MiB`);
      const t = new Float64Array((clusters * this.clusterSize) / 8);
      t.set(this.table);
      const old = { offset: this.tableOffset, clusters: this.tableClusters };
      this.table = t;
      const first = alloc();
      for (let c = 1; c < clusters; c++) alloc();
      this.tableOffset = first;
      this.tableClusters = clusters;
      // A table placed in this round and outgrown before it was written was never named by the
      // header: its clusters go back at once. The one the header names is freed after the switch.
      if (this.oldTable) for (let c = 0; c < old.clusters; c++) await this.add(old.offset / this.clusterSize + c, -1);
      else this.oldTable = old;
      this.tableDirty = true;
      for (let c = 0; c < clusters; c++) await this.add(first / this.clusterSize + c, 1);
    }
    throw new VdiskError('IO', `${this.file.path}: qcow2 refcount blocks could not be placed`);
  }

  /**
   * Writes changed blocks, flushes, then the table (in place, or the new table and the header
   * naming it), flushing again. Returns the old table's clusters to free, if the table moved.
   */
  async writeOut(): Promise<{ offset: number; clusters: number } | null> {
    if (this.fresh.size) throw new Error('refcount blocks not placed');
    for (const i of this.dirty) {
      const b = this.blocks.get(i) as Buffer;
      await this.file.writeAt(b, this.table[i]);
    }
    this.dirty.clear();
    const moved = this.oldTable;
    if (this.tableDirty) {
      await this.file.flush();
      const t = Buffer.alloc(this.tableClusters * this.clusterSize);
      for (let i = 0; i < this.table.length; i++) if (this.table[i]) writeEntry(t, i * 8, this.table[i]);
      await this.file.writeAt(t, this.tableOffset);
      if (moved) {
        await this.file.flush();
        const h = Buffer.alloc(12);
        writeEntry(h, 0, this.tableOffset);
        h.writeUInt32BE(this.tableClusters, 8);
        await this.file.writeAt(h, 48);
      }
      this.tableDirty = false;
      this.oldTable = null;
    }
    return moved;
  }

}

/** Clusters the refcount structures of an image of `clusters` clusters need (blocks plus table). */
export function refcountMetadataClusters(clusters: number, clusterSize: number, order: number): { blocks: number; table: number } {
  const perBlock = (clusterSize * 8) >> order;
  let blocks = 0;
  let table = 0;
  for (let i = 0; i < 100; i++) {
    const nb = Math.ceil((clusters + blocks + table) / perBlock);
    const nt = Math.ceil(roundUp(nb * 8, clusterSize) / clusterSize);
    if (nb === blocks && nt === table) break;
    blocks = nb;
    table = nt;
  }
  return { blocks, table };
}
