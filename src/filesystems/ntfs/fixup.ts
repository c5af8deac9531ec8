/**
 * Update sequences ("multi-sector transfer protection") of FILE and INDX records: the writer stores a
 * sequence number in the last two bytes of every 512-byte block of the record and keeps the bytes it
 * replaced in the update sequence array; a reader checks each block's tail against the number (a torn
 * write shows as a mismatch) and puts the saved bytes back. The stride is 512 whatever the sector
 * size (NTFS Documentation, "Fixup"; MS-FSCC's MULTI_SECTOR_HEADER).
 */

const STRIDE = 512;

/**
 * Applies the fixups to `rec` in place (a copy the caller owns); returns null, or what is wrong.
 * `rec.length` is the record's full size (MFT record or index block).
 */
export function applyFixups(rec: Buffer): string | null {
  const usaOffset = rec.readUInt16LE(4);
  const usaCount = rec.readUInt16LE(6);
  const blocks = rec.length / STRIDE;
  if (usaCount !== blocks + 1) return `update sequence count ${usaCount} does not fit a ${rec.length}-byte record`;
  if (usaOffset < 8 || (usaOffset & 1) !== 0 || usaOffset + usaCount * 2 > STRIDE - 2) return `update sequence array at ${usaOffset} out of bounds`;
  const usn = rec.readUInt16LE(usaOffset);
  for (let i = 0; i < blocks; i++) {
    const tail = (i + 1) * STRIDE - 2;
    if (rec.readUInt16LE(tail) !== usn) return `update sequence mismatch in block ${i} (torn write)`;
    rec.writeUInt16LE(rec.readUInt16LE(usaOffset + 2 + i * 2), tail);
  }
  return null;
}
