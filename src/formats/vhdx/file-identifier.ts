import { FILE_SIGNATURE } from './constants.js';

/** The first 64 KiB: the `vhdxfile` signature and an optional UTF-16LE creator string of 512 bytes. */
export interface FileIdentifier {
  creator: string;
}

export function hasVhdxSignature(buf: Uint8Array): boolean {
  return buf.length >= 8 && Buffer.from(buf.buffer, buf.byteOffset, 8).toString('latin1') === FILE_SIGNATURE;
}

export function parseFileIdentifier(buf: Buffer): FileIdentifier | null {
  if (!hasVhdxSignature(buf)) return null;
  const raw = buf.subarray(8, 8 + 512);
  let end = 0;
  while (end + 1 < raw.length && (raw[end] !== 0 || raw[end + 1] !== 0)) end += 2;
  return { creator: raw.subarray(0, end).toString('utf16le') };
}

export function serializeFileIdentifier(id: FileIdentifier): Buffer {
  const buf = Buffer.alloc(64 * 1024);
  buf.write(FILE_SIGNATURE, 0, 'latin1');
  const creator = Buffer.from(id.creator, 'utf16le').subarray(0, 510);
  creator.copy(buf, 8);
  return buf;
}
