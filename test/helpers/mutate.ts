import { crc32c } from '@node-rs/crc32';

/** Where the structures of a VHDX image sit, read from its (undamaged) region table. */
export interface VhdxMap {
  header: [number, number];
  regionTable: [number, number];
  metadata: number;
  bat: number;
  log: number;
  logLength: number;
}

export const KiB = 1024;

function guidHex(buf: Buffer, o: number): string {
  return buf.subarray(o, o + 16).toString('hex');
}
const BAT_GUID_LE = '6677c22d23f600429d64115e9bfd4a08';
const META_GUID_LE = '06a27c8b90479a4bb8fe575f050f886e';

export function mapVhdx(buf: Buffer): VhdxMap {
  const rt = 192 * KiB;
  let metadata = 0;
  let bat = 0;
  for (let i = 0; i < buf.readUInt32LE(rt + 8); i++) {
    const o = rt + 16 + i * 32;
    if (guidHex(buf, o) === BAT_GUID_LE) bat = Number(buf.readBigUInt64LE(o + 16));
    if (guidHex(buf, o) === META_GUID_LE) metadata = Number(buf.readBigUInt64LE(o + 16));
  }
  const h1 = 64 * KiB;
  const h2 = 128 * KiB;
  const cur = buf.readBigUInt64LE(h2 + 8) > buf.readBigUInt64LE(h1 + 8) ? h2 : h1;
  return {
    header: [h1, h2],
    regionTable: [rt, 256 * KiB],
    metadata,
    bat,
    log: Number(buf.readBigUInt64LE(cur + 72)),
    logLength: buf.readUInt32LE(cur + 68),
  };
}

/** Recomputes a CRC-32C field in place over `length` bytes at `start`. */
export function reseal(buf: Buffer, start: number, length: number): void {
  buf.writeUInt32LE(0, start + 4);
  buf.writeUInt32LE(crc32c(buf.subarray(start, start + length)) >>> 0, start + 4);
}

export function resealHeaders(buf: Buffer): void {
  reseal(buf, 64 * KiB, 4 * KiB);
  reseal(buf, 128 * KiB, 4 * KiB);
}

export function resealRegionTables(buf: Buffer): void {
  reseal(buf, 192 * KiB, 64 * KiB);
  reseal(buf, 256 * KiB, 64 * KiB);
}

/** Re-seals every log entry header found at a sector start, when its length fits in the log. */
export function resealLog(buf: Buffer, m: VhdxMap): void {
  for (let s = 0; s < m.logLength; s += 4 * KiB) {
    const at = m.log + s;
    if (buf.readUInt32LE(at) !== 0x65676f6c) continue;
    const len = buf.readUInt32LE(at + 8);
    if (len > 0 && len % 4096 === 0 && s + len <= m.logLength) reseal(buf, at, len);
  }
}

/** Appends a metadata entry with an unknown GUID and IsRequired set: readers must refuse the file. */
export function addUnknownRequiredItem(b: Buffer, m: VhdxMap): Buffer {
  const n = b.readUInt16LE(m.metadata + 10);
  const o = m.metadata + 32 + n * 32;
  b.fill(0x66, o, o + 16);
  b.writeUInt32LE(64 * 1024, o + 16);
  b.writeUInt32LE(8, o + 20);
  b.writeUInt32LE(4, o + 24);
  b.writeUInt16LE(n + 1, m.metadata + 10);
  return b;
}
