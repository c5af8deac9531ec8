/**
 * The Up-case Table (specification 7.2): how the volume folds UTF-16 code units to upper case, which is
 * how names compare (7.7.3: names are case-insensitive, case-preserving). The table lists the up-case
 * value of each code unit from 0 in order; a 0xFFFF entry followed by a count means that many code
 * units map to themselves (the "compressed" form of 7.2.5). Code units past the table map to themselves.
 */

/** 65,536 code units of two bytes: the largest uncompressed table. */
export const MAX_UPCASE_BYTES = 0x10000 * 2;

/** TableChecksum (7.2.2): the 32-bit rotate-right-and-add over every byte of the table as stored. */
export function upcaseChecksum(data: Buffer): number {
  let sum = 0;
  for (let i = 0; i < data.length; i++) {
    sum = ((((sum & 1) << 31) | (sum >>> 1)) + data[i]) >>> 0;
  }
  return sum;
}

export class UpcaseTable {
  /** map[c] is the up-case of code unit c. */
  private readonly map: Uint16Array;

  private constructor(map: Uint16Array) {
    this.map = map;
  }

  /** Folding of a-z only, for a volume whose table is missing or damaged. */
  static ascii(): UpcaseTable {
    const map = identity();
    for (let c = 0x61; c <= 0x7a; c++) map[c] = c - 0x20;
    return new UpcaseTable(map);
  }

  /** Expands a table as stored (compressed or not); an odd length or a run past 0xFFFF is reported. */
  static parse(data: Buffer): UpcaseTable | string {
    if (data.length % 2 !== 0) return `length ${data.length} is odd`;
    const map = identity();
    let index = 0;
    for (let o = 0; o < data.length; o += 2) {
      if (index > 0xffff) return 'entries continue past code unit 0xFFFF';
      const v = data.readUInt16LE(o);
      // A code unit mapping to itself is stored as itself; 0xFFFF elsewhere starts a run of identities.
      if (v === 0xffff && index !== 0xffff) {
        if (o + 2 >= data.length) return 'the table ends inside a run of identity mappings';
        o += 2;
        index += data.readUInt16LE(o);
        continue;
      }
      map[index++] = v;
    }
    return new UpcaseTable(map);
  }

  /** The name with every code unit folded: equal folds mean equal names on this volume. */
  fold(name: string): string {
    let out = '';
    for (let i = 0; i < name.length; i++) out += String.fromCharCode(this.map[name.charCodeAt(i)]);
    return out;
  }
}

function identity(): Uint16Array {
  const map = new Uint16Array(0x10000);
  for (let c = 0; c < map.length; c++) map[c] = c;
  return map;
}
