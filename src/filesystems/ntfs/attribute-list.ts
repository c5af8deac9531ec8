import { refRecord } from './record.js';

/**
 * $ATTRIBUTE_LIST (type 0x20): when a file's attributes do not fit its base record, this lists every
 * attribute (extent) and the MFT record holding it. Entry layout: NTFS Documentation, "$ATTRIBUTE_LIST".
 */

export interface AttributeListEntry {
  type: number;
  name: string;
  startVcn: number;
  record: number;
  id: number;
}

/** The entries of an attribute list value, or what is wrong; at most `max` entries. */
export function parseAttributeList(b: Buffer, max: number): AttributeListEntry[] | string {
  const out: AttributeListEntry[] = [];
  let at = 0;
  while (at + 26 <= b.length) {
    const type = b.readUInt32LE(at);
    const len = b.readUInt16LE(at + 4);
    if (len < 26 || (len & 7) !== 0 || at + len > b.length) return `entry at ${at}: length ${len} out of bounds`;
    const nameLength = b[at + 6];
    const nameOffset = b[at + 7];
    if (nameLength && nameOffset + nameLength * 2 > len) return `entry at ${at}: name out of bounds`;
    if (out.length >= max) return `more than ${max} entries`;
    const vcn = b.readBigUInt64LE(at + 8);
    if (vcn > BigInt(Number.MAX_SAFE_INTEGER)) return `entry at ${at}: VCN out of range`;
    out.push({
      type,
      name: nameLength ? b.toString('utf16le', at + nameOffset, at + nameOffset + nameLength * 2) : '',
      startVcn: Number(vcn),
      record: refRecord(b, at + 16),
      id: b.readUInt16LE(at + 24),
    });
    at += len;
  }
  return out;
}
