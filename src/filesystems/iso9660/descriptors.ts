import type { VolumeReader } from '../types.js';

/**
 * The volume descriptor set (ECMA-119 8): 2048-byte descriptors from sector 16 on, each starting with
 * a type byte and "CD001", ended by a terminator (type 255). Primary (type 1) and supplementary
 * (type 2, Joliet when its escape sequences say UCS-2) descriptors share one layout (8.4, 8.5); a boot
 * record (type 0) with the El Torito system identifier points at the boot catalog.
 */

/** Descriptors, the boot catalog and directory records live in 2048-byte sectors whatever the block size. */
export const SECTOR = 2048;
export const VD_START = 16 * SECTOR;
/** A real set has a handful; this bounds the scan on a volume whose descriptors never terminate. */
export const MAX_DESCRIPTORS = 64;

export const VD_BOOT = 0;
export const VD_PRIMARY = 1;
export const VD_SUPPLEMENTARY = 2;
export const VD_PARTITION = 3;
export const VD_TERMINATOR = 255;

/** The fields shared by the primary and supplementary descriptors (ECMA-119 8.4, 8.5). */
export interface VolumeDescriptor {
  type: number;
  /** Where it is, in 2048-byte sectors from the volume's start. */
  sector: number;
  /** The whole 2048-byte descriptor (labels, dates and the root record are read from it). */
  raw: Buffer;
  volumeId: Buffer;
  /** In logical blocks. */
  volumeSpaceSize: number;
  logicalBlockSize: number;
  pathTableSize: number;
  /** Type L and M path tables and their optional copies, in logical blocks; 0 where absent. */
  pathTables: number[];
  /** The 34-byte root directory record (9.1). */
  rootRecord: Buffer;
  /** Joliet level 1-3 from the escape sequences (Joliet specification 4.2), 0 for other descriptors. */
  jolietLevel: number;
}

export interface BootRecord {
  sector: number;
  systemId: string;
  /** El Torito: the boot catalog's sector (El Torito 1.0, 2.0 "Boot Record Volume Descriptor"). */
  catalogSector?: number;
}

export interface DescriptorSet {
  primary: VolumeDescriptor | null;
  /** The first supplementary descriptor whose escape sequences name UCS-2. */
  joliet: VolumeDescriptor | null;
  boot: BootRecord[];
  /** Sectors holding descriptors, the terminator included. */
  sectors: number;
  terminated: boolean;
}

/** Joliet's escape sequences: %/@, %/C, %/E for levels 1, 2, 3. */
function jolietLevel(d: Buffer): number {
  if (d[88] !== 0x25 || d[89] !== 0x2f) return 0;
  return [0x40, 0x43, 0x45].indexOf(d[90]) + 1;
}

function parseVolumeDescriptor(d: Buffer, sector: number): VolumeDescriptor {
  return {
    type: d[0],
    sector,
    raw: d,
    volumeId: d.subarray(40, 72),
    // Both-endian fields: the little-endian half, as most readers do, since some mastering tools botch the other.
    volumeSpaceSize: d.readUInt32LE(80),
    logicalBlockSize: d.readUInt16LE(128),
    pathTableSize: d.readUInt32LE(132),
    pathTables: [d.readUInt32LE(140), d.readUInt32LE(144), d.readUInt32BE(148), d.readUInt32BE(152)],
    rootRecord: d.subarray(156, 190),
    jolietLevel: d[0] === VD_SUPPLEMENTARY ? jolietLevel(d) : 0,
  };
}

/** Reads the descriptor set; stops at the terminator, at the first sector without "CD001", or after MAX_DESCRIPTORS. */
export async function readDescriptorSet(v: VolumeReader): Promise<DescriptorSet> {
  const set: DescriptorSet = { primary: null, joliet: null, boot: [], sectors: 0, terminated: false };
  for (let i = 0; i < MAX_DESCRIPTORS; i++) {
    const sector = 16 + i;
    const d = await v.read(sector * SECTOR, SECTOR);
    if (d.toString('latin1', 1, 6) !== 'CD001') break;
    set.sectors = i + 1;
    const type = d[0];
    if (type === VD_TERMINATOR) {
      set.terminated = true;
      break;
    }
    if (type === VD_PRIMARY && !set.primary) set.primary = parseVolumeDescriptor(d, sector);
    else if (type === VD_SUPPLEMENTARY && !set.joliet && jolietLevel(d)) set.joliet = parseVolumeDescriptor(d, sector);
    else if (type === VD_BOOT) {
      const systemId = d.toString('latin1', 7, 39).replace(/\0+$/, '');
      const rec: BootRecord = { sector, systemId };
      if (systemId === 'EL TORITO SPECIFICATION') rec.catalogSector = d.readUInt32LE(71);
      set.boot.push(rec);
    }
  }
  return set;
}

/** UCS-2 big-endian (Joliet names and labels) to a string; surrogate pairs written by newer tools pass through. */
export function ucs2be(b: Buffer): string {
  const n = b.length - (b.length % 2);
  const le = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i += 2) {
    le[i] = b[i + 1];
    le[i + 1] = b[i];
  }
  return le.toString('utf16le');
}
