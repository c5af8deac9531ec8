import { VdiskError } from '../../errors.js';
import type { PartitionDescriptor } from './partition-descriptor.js';
import type { PartitionMap } from './partition-map.js';
import type { Sparing } from './sparing-table.js';
import { VAT_UNUSED } from './vat.js';

/**
 * Logical blocks to sectors: each partition reference number (the index of a partition map, UDF 2.60
 * 2.2.8) names a space of logical blocks. Type 1 maps are the partition's sectors from its start;
 * sparable partitions replace spared packets (2.2.9); a virtual partition looks each block up in the VAT
 * (2.2.11); a metadata partition is the metadata file's extents in its physical partition (2.2.10).
 */
export interface MetadataRun {
  /** First block of the metadata partition the run covers. */
  block: number;
  count: number;
  /** Where it is in the physical partition. */
  physical: number;
}

type Space =
  | { kind: 'physical'; pd: PartitionDescriptor }
  | { kind: 'sparable'; pd: PartitionDescriptor; packetLength: number; sparing?: Sparing }
  | { kind: 'virtual'; pd: PartitionDescriptor; vat?: Uint32Array }
  | { kind: 'metadata'; pd: PartitionDescriptor; physicalRef: number; runs?: MetadataRun[] }
  | { kind: 'unknown'; what: string };

export class PartitionSpaces {
  readonly spaces: Space[] = [];
  private readonly name: string;

  /** Builds a space per map, and a hidden physical space (reference number past the maps) for each partition a map only reaches indirectly. */
  constructor(maps: PartitionMap[], partitions: Map<number, PartitionDescriptor>, name: string) {
    this.name = name;
    const physicalRefs = new Map<number, number>();
    maps.forEach((m, i) => {
      if (m.kind === 'physical') physicalRefs.set(m.partition, i);
    });
    const pdOf = (n: number, i: number): PartitionDescriptor => {
      const pd = partitions.get(n);
      if (!pd) throw new VdiskError('CORRUPT', `${name}: udf partition map ${i} names partition ${n}, which no partition descriptor describes`);
      return pd;
    };
    const extra: Space[] = [];
    const physicalRef = (n: number, i: number): number => {
      const had = physicalRefs.get(n);
      if (had !== undefined) return had;
      const ref = maps.length + extra.length;
      extra.push({ kind: 'physical', pd: pdOf(n, i) });
      physicalRefs.set(n, ref);
      return ref;
    };
    maps.forEach((m, i) => {
      switch (m.kind) {
        case 'physical':
          this.spaces.push({ kind: 'physical', pd: pdOf(m.partition, i) });
          break;
        case 'sparable':
          this.spaces.push({ kind: 'sparable', pd: pdOf(m.partition, i), packetLength: m.packetLength || 32 });
          break;
        case 'virtual':
          this.spaces.push({ kind: 'virtual', pd: pdOf(m.partition, i) });
          break;
        case 'metadata':
          this.spaces.push({ kind: 'metadata', pd: pdOf(m.partition, i), physicalRef: -1 });
          break;
        default:
          this.spaces.push({ kind: 'unknown', what: `partition map ${i} of unknown type "${m.identifier}"` });
      }
    });
    maps.forEach((m, i) => {
      if (m.kind === 'sparable' && !physicalRefs.has(m.partition)) physicalRefs.set(m.partition, i);
    });
    maps.forEach((m, i) => {
      const s = this.spaces[i];
      if (s.kind === 'metadata' || s.kind === 'virtual') {
        const ref = physicalRef((m as { partition: number }).partition, i);
        if (s.kind === 'metadata') s.physicalRef = ref;
      }
    });
    this.spaces.push(...extra);
    this.physicalRefs = physicalRefs;
  }

  private readonly physicalRefs: Map<number, number>;

  /** The reference number of partition `n`'s own blocks (a type 1 or sparable map, or a hidden one), for the metadata and VAT files and the space bitmaps. */
  physicalRef(n: number): number | undefined {
    return this.physicalRefs.get(n);
  }

  setSparing(ref: number, sparing: Sparing): void {
    const s = this.spaces[ref];
    if (s.kind === 'sparable') s.sparing = sparing;
  }

  setVat(ref: number, vat: Uint32Array): void {
    const s = this.spaces[ref];
    if (s.kind === 'virtual') s.vat = vat;
  }

  setMetadata(ref: number, runs: MetadataRun[]): void {
    const s = this.spaces[ref];
    if (s.kind === 'metadata') s.runs = runs;
  }

  /** The partition descriptor behind a reference number. */
  partitionOf(ref: number): PartitionDescriptor | undefined {
    const s = this.spaces[ref];
    return s && s.kind !== 'unknown' ? s.pd : undefined;
  }

  private fail(ref: number, block: number, what: string): VdiskError {
    return new VdiskError('CORRUPT', `${this.name}: udf block ${block} of partition reference ${ref}: ${what}`);
  }

  /**
   * Where `count` blocks from `block` of space `ref` start, as a run of consecutive sectors of the
   * volume: the returned count may be shorter (the caller asks again for the rest).
   */
  mapRun(ref: number, block: number, count: number): { sector: number; count: number } {
    const s = this.spaces[ref];
    if (!s) throw this.fail(ref, block, `no partition map ${ref} (the volume has ${this.spaces.length})`);
    if (count < 1) count = 1;
    switch (s.kind) {
      case 'unknown':
        throw new VdiskError('UNSUPPORTED', `${this.name}: udf ${s.what}`);
      case 'physical':
        if (block + count > s.pd.length) throw this.fail(ref, block, `past the end of partition ${s.pd.number} (${s.pd.length} blocks)`);
        return { sector: s.pd.start + block, count };
      case 'sparable': {
        if (block + count > s.pd.length) throw this.fail(ref, block, `past the end of partition ${s.pd.number} (${s.pd.length} blocks)`);
        const p = s.packetLength;
        const packet = block - (block % p);
        const inPacket = Math.min(count, packet + p - block);
        const spared = s.sparing?.map.get(packet);
        if (spared !== undefined) return { sector: spared + (block - packet), count: inPacket };
        // Consecutive unspared packets stay one run.
        let n = inPacket;
        while (n < count && !s.sparing?.map.has(block + n)) n = Math.min(count, n + p);
        return { sector: s.pd.start + block, count: n };
      }
      case 'virtual': {
        const vat = s.vat;
        if (!vat) throw this.fail(ref, block, 'the virtual allocation table is not loaded');
        if (block >= vat.length || vat[block] === VAT_UNUSED) throw this.fail(ref, block, `not in the virtual allocation table (${vat.length} entries)`);
        const first = vat[block];
        let n = 1;
        while (n < count && block + n < vat.length && vat[block + n] === first + n) n++;
        if (first + n > s.pd.length) throw this.fail(ref, block, `the virtual allocation table maps it past the end of partition ${s.pd.number}`);
        return { sector: s.pd.start + first, count: n };
      }
      case 'metadata': {
        const runs = s.runs;
        if (!runs) throw this.fail(ref, block, 'the metadata file is not loaded');
        let lo = 0;
        let hi = runs.length - 1;
        while (lo <= hi) {
          const mid = (lo + hi) >> 1;
          const r = runs[mid];
          if (block < r.block) hi = mid - 1;
          else if (block >= r.block + r.count) lo = mid + 1;
          else {
            const n = Math.min(count, r.block + r.count - block);
            return this.mapRun(s.physicalRef, r.physical + (block - r.block), n);
          }
        }
        throw this.fail(ref, block, 'outside the metadata file');
      }
    }
  }
}
