/**
 * $UpCase (MFT record 10): 65536 little-endian UTF-16 code units, the upper case of each. Names in a
 * directory index collate by their upcased code units (COLLATION_FILE_NAME, NTFS Documentation,
 * "Collation"), and Windows looks names up through it, so lookups here do the same.
 */

export class UpCase {
  private readonly table: Uint16Array;

  constructor(table: Uint16Array) {
    this.table = table;
  }

  /** From the $UpCase data (fewer than 65536 entries: the rest map to themselves). */
  static fromBytes(b: Buffer): UpCase {
    const t = new Uint16Array(65536);
    for (let i = 0; i < 65536; i++) t[i] = i;
    const n = Math.min(65536, Math.floor(b.length / 2));
    for (let i = 0; i < n; i++) t[i] = b.readUInt16LE(i * 2);
    return new UpCase(t);
  }

  /** Collation order of two names ignoring case: negative, zero or positive. */
  compare(a: Uint16Array, b: Uint16Array): number {
    const n = Math.min(a.length, b.length);
    for (let i = 0; i < n; i++) {
      const d = this.table[a[i]] - this.table[b[i]];
      if (d !== 0) return d;
    }
    return a.length - b.length;
  }
}

export function unitsOf(s: string): Uint16Array {
  const u = new Uint16Array(s.length);
  for (let i = 0; i < s.length; i++) u[i] = s.charCodeAt(i);
  return u;
}
