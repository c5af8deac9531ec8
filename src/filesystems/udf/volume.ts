import { VdiskError } from '../../errors.js';
import type { VolumeReader } from '../types.js';
import type { ExtentAd } from './addresses.js';
import { parseAnchor, type Anchor } from './anchor.js';
import { parseIntegrity, type Integrity } from './integrity.js';
import { MAP_TABLE_OFFSET, parseLogicalVolume, type LogicalVolume } from './logical-volume.js';
import { parsePartitionDescriptor, type PartitionDescriptor } from './partition-descriptor.js';
import { parsePartitionMaps, type PartitionMap } from './partition-map.js';
import { parsePrimaryVolume, type PrimaryVolume } from './primary-volume.js';
import { parseTag, tagProblem, TAG } from './tag.js';

/**
 * The volume structures (ECMA-167 part 3): the anchor, the prevailing descriptors of the volume
 * descriptor sequence and the logical volume integrity sequence.
 */

/** Block sizes tried for the anchor; UDF's logical block is the sector size (UDF 2.60 2.2.4.2). */
const BLOCK_SIZES = [2048, 512, 4096, 1024];
/** ECMA-167 3/8.4.2 asks for at least 16 sectors; we read no more than this many in one sequence. */
const MAX_SEQUENCE_BLOCKS = 256;
/** Volume descriptor pointers (3/10.3) followed, and descriptors read, in one sequence. */
const MAX_SEQUENCE_EXTENTS = 16;
const MAX_INTEGRITY_EXTENTS = 64;

export interface VolumeStructures {
  blockSize: number;
  anchor: Anchor;
  pvd: PrimaryVolume;
  lvd: LogicalVolume;
  /** The logical volume descriptor's bytes (the partition map table is in it). */
  lvdBytes: Buffer;
  maps: PartitionMap[];
  partitions: Map<number, PartitionDescriptor>;
  integrity?: Integrity;
}

/** The anchor and block size: sector 256 at each block size, then the last sector and 256 before it. */
export async function findAnchor(v: VolumeReader): Promise<{ blockSize: number; anchor: Anchor; sector: number } | null> {
  for (const last of [false, true]) {
    for (const bs of BLOCK_SIZES) {
      const n = Math.floor(v.size / bs);
      const sectors = last ? [n - 1, n - 257] : [256];
      for (const s of sectors) {
        if (s < 256 || s >= n) continue;
        const anchor = parseAnchor(await v.read(s * bs, bs), s);
        if (anchor) return { blockSize: bs, anchor, sector: s };
      }
    }
  }
  return null;
}

interface Sequence {
  pvd?: PrimaryVolume;
  lvd?: { d: LogicalVolume; bytes: Buffer };
  partitions: Map<number, PartitionDescriptor>;
}

/**
 * Reads one volume descriptor sequence, following volume descriptor pointers, until a terminating
 * descriptor, an unrecorded (zero) sector or the end of its extent; for each kind the descriptor with
 * the highest sequence number prevails (3/8.4.3).
 */
async function readSequence(v: VolumeReader, bs: number, start: ExtentAd, fail: (what: string) => VdiskError): Promise<Sequence> {
  const seq: Sequence = { partitions: new Map() };
  let extent: ExtentAd | null = start;
  for (let hop = 0; extent && hop < MAX_SEQUENCE_EXTENTS; hop++) {
    const blocks = Math.min(MAX_SEQUENCE_BLOCKS, Math.floor(extent.length / bs));
    if (blocks === 0) throw fail(`sequence extent of ${extent.length} bytes`);
    if ((extent.location + blocks) * bs > v.size) throw fail(`sequence at sector ${extent.location} runs past the end of the volume`);
    const data = await v.read(extent.location * bs, blocks * bs);
    let next: ExtentAd | null = null;
    let i = 0;
    for (; i < blocks; i++) {
      const sector = extent.location + i;
      const d = data.subarray(i * bs, (i + 1) * bs);
      const id = parseTag(d).id;
      if (id === 0 && d.every((x) => x === 0)) break;
      const problem = tagProblem(d, 0, [TAG.PRIMARY_VOLUME, TAG.VOLUME_POINTER, TAG.IMPLEMENTATION_USE, TAG.PARTITION, TAG.LOGICAL_VOLUME, TAG.UNALLOCATED_SPACE, TAG.TERMINATING], sector);
      if (problem) throw fail(`descriptor at sector ${sector}: ${problem}`);
      if (id === TAG.TERMINATING) break;
      if (id === TAG.VOLUME_POINTER) {
        next = { length: d.readUInt32LE(20), location: d.readUInt32LE(24) };
        break;
      }
      if (id === TAG.PRIMARY_VOLUME) {
        const p = parsePrimaryVolume(d);
        if (!seq.pvd || p.sequenceNumber >= seq.pvd.sequenceNumber) seq.pvd = p;
      } else if (id === TAG.LOGICAL_VOLUME) {
        const l = parseLogicalVolume(d);
        if (!seq.lvd || l.sequenceNumber >= seq.lvd.d.sequenceNumber) seq.lvd = { d: l, bytes: Buffer.from(d) };
      } else if (id === TAG.PARTITION) {
        const p = parsePartitionDescriptor(d);
        const had = seq.partitions.get(p.number);
        if (!had || p.sequenceNumber >= had.sequenceNumber) seq.partitions.set(p.number, p);
      }
    }
    extent = next;
  }
  return seq;
}

/** Reads the anchor, the main (else the reserve) descriptor sequence and the integrity sequence. */
export async function readVolumeStructures(v: VolumeReader, name: string, warnings: string[]): Promise<VolumeStructures> {
  const found = await findAnchor(v);
  if (!found) throw new VdiskError('CORRUPT', `${name}: udf: no valid anchor volume descriptor pointer at sector 256 or at the end, for 512 to 4096-byte blocks`);
  const { blockSize: bs, anchor } = found;
  if (found.sector !== 256) warnings.push(`udf: no valid anchor at sector 256; read the one at sector ${found.sector}`);
  const problems: string[] = [];
  let chosen: Sequence | null = null;
  for (const [which, extent] of [['main', anchor.main], ['reserve', anchor.reserve]] as const) {
    try {
      const seq = await readSequence(v, bs, extent, (what) => new VdiskError('CORRUPT', `${name}: udf ${which} volume descriptor sequence: ${what}`));
      const missing = [!seq.pvd && 'primary volume', !seq.lvd && 'logical volume', seq.partitions.size === 0 && 'partition'].filter(Boolean);
      if (missing.length) throw new VdiskError('CORRUPT', `${name}: udf ${which} volume descriptor sequence has no ${missing.join(', ')} descriptor`);
      chosen = seq;
      if (which === 'reserve') warnings.push(`udf: main volume descriptor sequence unusable (${problems[0]}); read the reserve`);
      break;
    } catch (err) {
      if (!(err instanceof VdiskError)) throw err;
      problems.push(err.message.slice(name.length + 2));
      if (which === 'reserve') throw new VdiskError('CORRUPT', `${name}: ${problems.join('; ')}`);
    }
  }
  const seq = chosen as Sequence;
  const pvd = seq.pvd as PrimaryVolume;
  const { d: lvd, bytes: lvdBytes } = seq.lvd as { d: LogicalVolume; bytes: Buffer };
  const fail = (what: string) => new VdiskError('CORRUPT', `${name}: udf logical volume descriptor: ${what}`);
  if (lvd.blockSize !== bs) {
    throw new VdiskError('UNSUPPORTED', `${name}: udf logical block size ${lvd.blockSize} differs from the ${bs}-byte sectors the anchor was found with`);
  }
  if (lvd.mapTableLength > bs - MAP_TABLE_OFFSET || lvd.mapCount > 64) throw fail(`partition map table of ${lvd.mapTableLength} bytes, ${lvd.mapCount} maps`);
  const maps = parsePartitionMaps(lvdBytes.subarray(MAP_TABLE_OFFSET, MAP_TABLE_OFFSET + lvd.mapTableLength), lvd.mapCount);
  if (typeof maps === 'string') throw fail(maps);
  if (maps.length === 0) throw fail('no partition maps');
  for (const p of seq.partitions.values()) {
    if ((p.start + p.length) * bs > v.size) {
      warnings.push(`udf: partition ${p.number} (sectors ${p.start}+${p.length}) runs past the end of the volume (${v.size} bytes); reads there give zeros`);
    }
  }
  const integrity = await readIntegrity(v, bs, lvd.integrity, maps.some((m) => m.kind === 'virtual'), warnings);
  return { blockSize: bs, anchor, pvd, lvd, lvdBytes, maps, partitions: seq.partitions, integrity };
}

/** The last logical volume integrity descriptor of the integrity sequence (3/8.8.2), following its next-extent links. */
async function readIntegrity(v: VolumeReader, bs: number, start: ExtentAd, virtual: boolean, warnings: string[]): Promise<Integrity | undefined> {
  let last: Integrity | undefined;
  let extent: ExtentAd | null = start.length > 0 ? start : null;
  const seen = new Set<number>();
  for (let hop = 0; extent && hop < MAX_INTEGRITY_EXTENTS; hop++) {
    if (seen.has(extent.location)) break;
    seen.add(extent.location);
    const blocks = Math.min(MAX_SEQUENCE_BLOCKS, Math.floor(extent.length / bs));
    let next: ExtentAd | null = null;
    for (let i = 0; i < blocks; i++) {
      const sector = extent.location + i;
      if ((sector + 1) * bs > v.size) break;
      const d = await v.read(sector * bs, bs);
      const id = parseTag(d).id;
      if (id === 0 && d.every((x) => x === 0)) break;
      const problem = tagProblem(d, 0, [TAG.INTEGRITY, TAG.TERMINATING], sector);
      if (problem) {
        warnings.push(`udf: logical volume integrity descriptor at sector ${sector}: ${problem}; ignored`);
        break;
      }
      if (id === TAG.TERMINATING) break;
      const lvid = parseIntegrity(d);
      if (typeof lvid === 'string') {
        warnings.push(`udf: ${lvid} at sector ${sector}; ignored`);
        break;
      }
      last = lvid;
      if (lvid.next.length > 0) {
        next = lvid.next;
        break;
      }
    }
    extent = next;
  }
  // On write-once media with a VAT the integrity descriptor stays open by design (UDF 2.60 2.2.6.3).
  if (last && last.type === 0 && !virtual) warnings.push(`udf: the logical volume integrity descriptor says the volume is open (it was not closed cleanly); contents may be incomplete`);
  return last;
}
