/**
 * OSTA Compressed Unicode (UDF 2.60 2.1.1, "CS0"): a compression id, then 8-bit characters (id 8) or
 * UTF-16BE units (id 16). UDF 2.50 added 254 and 255 as the same encodings for the names of deleted
 * files. dstrings (ECMA-167 1/7.2.12) are fixed fields whose last byte counts the bytes in use.
 */

/** The characters of a CS0 string, compression id included; undefined for an unknown compression id. */
export function decodeCs0(b: Buffer): string | undefined {
  if (b.length === 0) return '';
  const comp = b[0];
  const body = b.subarray(1);
  if (comp === 8 || comp === 254) return body.toString('latin1');
  if (comp === 16 || comp === 255) {
    const n = body.length - (body.length % 2);
    const le = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i += 2) {
      le[i] = body[i + 1];
      le[i + 1] = body[i];
    }
    return le.toString('utf16le');
  }
  return undefined;
}

/** A dstring field: undefined when empty or malformed. */
export function dstring(field: Buffer): string | undefined {
  const len = field[field.length - 1];
  if (len === 0 || len > field.length - 1) return undefined;
  return decodeCs0(field.subarray(0, len));
}
