import { randomBytes } from 'node:crypto';

/** VHD UUIDs are 16 bytes shown in the usual 8-4-4-4-12 form, bytes in file order (as vhdiinfo shows). */
export function readUuid(buf: Uint8Array, offset: number): string {
  const h = Buffer.from(buf.subarray(offset, offset + 16)).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function writeUuid(buf: Uint8Array, offset: number, uuid: string): void {
  const h = uuid.replace(/-/g, '');
  Buffer.from(h, 'hex').copy(buf, offset);
}

export function newUuid(): string {
  const b = randomBytes(16);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  return readUuid(b, 0);
}

export const ZERO_UUID = '00000000-0000-0000-0000-000000000000';
