import { parseRegid } from './addresses.js';
import { crcItu, parseTag } from './tag.js';

/**
 * The sparing table of a sparable partition (UDF 2.60 2.2.12): packets of the partition whose blocks
 * went bad, each with the physical sector of the packet that replaces it. Its tag's identifier is 0.
 */
export interface Sparing {
  /** Original packet start (a block of the partition) to the replacing sector of the volume. */
  map: Map<number, number>;
}

const MAX_ENTRIES = 65535;

export function parseSparingTable(b: Buffer): Sparing | string {
  const t = parseTag(b);
  if (t.id !== 0 || !t.checksumOk) return 'sparing table tag is not valid';
  if (t.crcLength > 0 && (16 + t.crcLength > b.length || crcItu(b.subarray(16, 16 + t.crcLength)) !== t.crc)) return 'sparing table CRC mismatch';
  const id = parseRegid(b, 16).id;
  if (id !== '*UDF Sparing Table') return `sparing table identifier "${id}"`;
  const n = b.readUInt16LE(48);
  if (n > MAX_ENTRIES || 56 + 8 * n > b.length) return `sparing table counts ${n} entries`;
  const map = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const original = b.readUInt32LE(56 + 8 * i);
    // 0xFFFFFFF0 and above: a spare packet that is free or defective, not a replacement.
    if (original < 0xfffffff0) map.set(original, b.readUInt32LE(60 + 8 * i));
  }
  return { map };
}
