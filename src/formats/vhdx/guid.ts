import { randomBytes } from 'node:crypto';

/**
 * GUIDs as VHDX stores them: Data1 u32 LE, Data2 u16 LE, Data3 u16 LE, Data4 as written. Strings are
 * the conventional upper-case-free 8-4-4-4-12 form.
 */
export function readGuid(buf: Uint8Array, offset: number): string {
  const b = buf.subarray(offset, offset + 16);
  const hex = (i: number) => b[i].toString(16).padStart(2, '0');
  return (
    hex(3) + hex(2) + hex(1) + hex(0) + '-' + hex(5) + hex(4) + '-' + hex(7) + hex(6) + '-' +
    hex(8) + hex(9) + '-' + hex(10) + hex(11) + hex(12) + hex(13) + hex(14) + hex(15)
  );
}

export function writeGuid(buf: Uint8Array, offset: number, guid: string): void {
  const h = guid.replace(/[{}-]/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(h)) throw new Error(`not a GUID: ${guid}`);
  const byte = (i: number) => parseInt(h.slice(i * 2, i * 2 + 2), 16);
  const order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
  for (let i = 0; i < 16; i++) buf[offset + order[i]] = byte(i);
}

export const ZERO_GUID = '00000000-0000-0000-0000-000000000000';

/** A random (version 4) GUID, as Hyper-V generates for file, data and log identities. */
export function newGuid(): string {
  const b = randomBytes(16);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
