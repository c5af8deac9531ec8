/**
 * The descriptor tag that opens every UDF descriptor (ECMA-167 3/7.2, 4/7.2): identifier, version,
 * a checksum over the tag itself and a CRC over the descriptor's body.
 */

/** Tag identifiers (ECMA-167 3/7.2.1 and 4/7.2.1). */
export const TAG = {
  PRIMARY_VOLUME: 1,
  ANCHOR: 2,
  VOLUME_POINTER: 3,
  IMPLEMENTATION_USE: 4,
  PARTITION: 5,
  LOGICAL_VOLUME: 6,
  UNALLOCATED_SPACE: 7,
  TERMINATING: 8,
  INTEGRITY: 9,
  FILE_SET: 256,
  FILE_IDENTIFIER: 257,
  ALLOCATION_EXTENT: 258,
  INDIRECT_ENTRY: 259,
  TERMINAL_ENTRY: 260,
  FILE_ENTRY: 261,
  EXTENDED_ATTRIBUTE_HEADER: 262,
  UNALLOCATED_SPACE_ENTRY: 263,
  SPACE_BITMAP: 264,
  EXTENDED_FILE_ENTRY: 266,
} as const;

export const TAG_SIZE = 16;

export interface Tag {
  id: number;
  version: number;
  serial: number;
  crc: number;
  crcLength: number;
  /** The logical sector (volume structures) or partition block (file structures) the descriptor says it is at. */
  location: number;
  checksumOk: boolean;
}

/** Parses the 16-byte tag at `at`; the caller decides which checks it needs (blkid, for one, checks none). */
export function parseTag(b: Buffer, at = 0): Tag {
  let sum = 0;
  for (let i = 0; i < TAG_SIZE; i++) if (i !== 4) sum += b[at + i];
  return {
    id: b.readUInt16LE(at),
    version: b.readUInt16LE(at + 2),
    serial: b.readUInt16LE(at + 6),
    crc: b.readUInt16LE(at + 8),
    crcLength: b.readUInt16LE(at + 10),
    location: b.readUInt32LE(at + 12),
    checksumOk: (sum & 0xff) === b[at + 4],
  };
}

const CRC_TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let k = 0; k < 8; k++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    t[i] = c;
  }
  return t;
})();

/** CRC-ITU-T (x^16 + x^12 + x^5 + 1, initial 0, most significant bit first), ECMA-167 1/7.2.6. */
export function crcItu(b: Uint8Array, start = 0, end = b.length): number {
  let c = 0;
  for (let i = start; i < end; i++) c = ((c << 8) & 0xff00) ^ CRC_TABLE[((c >> 8) ^ b[i]) & 0xff];
  return c;
}

/**
 * Why the descriptor at `at` is not a valid `expected` tag, or null when it is: identifier, tag checksum,
 * the CRC over the body and, when given, the location. `partialBody`: `b` holds only the start of a long
 * descriptor (a space bitmap), so a CRC counting more than it holds is not checked.
 */
export function tagProblem(b: Buffer, at: number, expected: number | readonly number[], location?: number, partialBody = false): string | null {
  if (b.length < at + TAG_SIZE) return 'descriptor cut short';
  // Fields read in place (no Tag object, no array of one identifier): every file entry of a walk comes here.
  const id = b.readUInt16LE(at);
  if (typeof expected === 'number' ? id !== expected : !expected.includes(id)) {
    return `tag identifier ${id}, expected ${typeof expected === 'number' ? expected : expected.join(' or ')}`;
  }
  let sum = 0;
  for (let i = 0; i < TAG_SIZE; i++) if (i !== 4) sum += b[at + i];
  if ((sum & 0xff) !== b[at + 4]) return 'tag checksum mismatch';
  const crcLength = b.readUInt16LE(at + 10);
  if (crcLength > 0) {
    const end = at + TAG_SIZE + crcLength;
    if (end > b.length) {
      if (!partialBody) return `CRC length ${crcLength} runs past the descriptor`;
    } else if (crcItu(b, at + TAG_SIZE, end) !== b.readUInt16LE(at + 8)) return 'descriptor CRC mismatch';
  }
  const found = b.readUInt32LE(at + 12);
  if (location !== undefined && found !== location) return `tag says block ${found}, found at ${location}`;
  return null;
}
