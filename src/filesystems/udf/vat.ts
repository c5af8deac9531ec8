import { parseRegid } from './addresses.js';

/**
 * The virtual allocation table of write-once media (UDF 2.60 2.2.11): a file, the last one written,
 * mapping each virtual block to a block of the physical partition. UDF 2.00+ opens it with a header
 * (ICB file type 248); UDF 1.50 has no header but ends it with the regid "*UDF Virtual Alloc Tbl" and
 * the previous VAT's location.
 */
export const VAT_UNUSED = 0xffffffff;

export interface Vat {
  entries: Uint32Array;
  files?: number;
  directories?: number;
}

export function parseVat(data: Buffer, withHeader: boolean): Vat | string {
  if (withHeader) {
    if (data.length < 152) return `VAT of ${data.length} bytes is shorter than its header`;
    const headerLength = data.readUInt16LE(0);
    if (headerLength < 152 || headerLength > data.length) return `VAT header length ${headerLength}`;
    return {
      entries: entries(data.subarray(headerLength)),
      files: data.readUInt32LE(136),
      directories: data.readUInt32LE(140),
    };
  }
  if (data.length < 36) return `VAT of ${data.length} bytes cannot hold its identifier`;
  const id = parseRegid(data, data.length - 36).id;
  if (id !== '*UDF Virtual Alloc Tbl') return `VAT ends with "${id}", not "*UDF Virtual Alloc Tbl"`;
  return { entries: entries(data.subarray(0, data.length - 36)) };
}

function entries(b: Buffer): Uint32Array {
  const n = Math.floor(b.length / 4);
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = b.readUInt32LE(4 * i);
  return out;
}
