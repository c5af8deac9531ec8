import { parseExtentAd, parseRegid, udfRevision, type ExtentAd } from './addresses.js';
import { dstring } from './osta.js';

/**
 * The logical volume descriptor (ECMA-167 3/10.6): the volume's name, its logical block size, the UDF
 * revision in its domain identifier (UDF 2.60 2.1.5.3), the long_ad of the file set descriptor, the
 * integrity sequence and the partition map table (parsed by partition-map.ts).
 */
export interface LogicalVolume {
  sequenceNumber: number;
  identifier?: string;
  blockSize: number;
  domain: string;
  /** 0x0201 for UDF 2.01; 0 when the domain suffix does not say. */
  revision: number;
  fileSet: { length: number; block: number; partition: number };
  mapTableLength: number;
  mapCount: number;
  integrity: ExtentAd;
}

/** Where the map table starts in the descriptor. */
export const MAP_TABLE_OFFSET = 440;

export function parseLogicalVolume(b: Buffer): LogicalVolume {
  const domain = parseRegid(b, 216);
  return {
    sequenceNumber: b.readUInt32LE(16),
    identifier: dstring(b.subarray(84, 212)),
    blockSize: b.readUInt32LE(212),
    domain: domain.id,
    revision: udfRevision(domain),
    fileSet: { length: b.readUInt32LE(248) & 0x3fffffff, block: b.readUInt32LE(252), partition: b.readUInt16LE(256) },
    mapTableLength: b.readUInt32LE(264),
    mapCount: b.readUInt32LE(268),
    integrity: parseExtentAd(b, 432),
  };
}

/** "2.01" from 0x0201, as blkid spells VERSION. */
export function revisionString(rev: number): string {
  return `${(rev >> 8).toString(16)}.${(rev & 0xff).toString(16).padStart(2, '0')}`;
}
