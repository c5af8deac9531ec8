import { corrupt } from '../../errors.js';
import { DISK_DIFFERENCING, DISK_DYNAMIC, DISK_FIXED, FOOTER_SIZE, VHD_EPOCH, vhdChecksum } from './constants.js';
import type { Chs } from './geometry.js';
import { readUuid, writeUuid } from './uuid.js';

/** The hard disk footer: 512 bytes at the end of every VHD, copied at offset 0 of dynamic ones. */
export interface Footer {
  features: number;
  version: number;
  /** The dynamic header's offset; -1 for a fixed disk (all ones on disk). */
  dataOffset: number;
  /** Seconds since 2000-01-01 UTC. */
  timestamp: number;
  creatorApp: string;
  creatorVersion: number;
  creatorHostOs: string;
  originalSize: number;
  currentSize: number;
  chs: Chs;
  diskType: number;
  checksum: number;
  uuid: string;
  savedState: boolean;
}

const COOKIE = Buffer.from('conectix', 'latin1');
const CHECKSUM_AT = 64;

export function hasFooterCookie(buf: Uint8Array, at = 0): boolean {
  return buf.length >= at + 8 && Buffer.from(buf.buffer, buf.byteOffset + at, 8).equals(COOKIE);
}

/** True when `buf` holds a footer whose checksum is right. */
export function footerChecksumOk(buf: Uint8Array): boolean {
  if (buf.length < FOOTER_SIZE || !hasFooterCookie(buf)) return false;
  const b = Buffer.from(buf.buffer, buf.byteOffset, FOOTER_SIZE);
  return vhdChecksum(b, CHECKSUM_AT) === b.readUInt32BE(CHECKSUM_AT);
}

function fourCc(buf: Buffer, at: number): string {
  return buf.toString('latin1', at, at + 4);
}

function u64(buf: Buffer, at: number): number {
  const v = buf.readBigUInt64BE(at);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(v);
}

/**
 * Parses a footer (a 511-byte one too: the saved-state byte is then absent), refusing a wrong cookie,
 * checksum or disk type. `where` names the copy in messages.
 */
export function parseFooter(file: string, raw: Uint8Array, where: string): Footer {
  const buf = Buffer.alloc(FOOTER_SIZE);
  buf.set(raw.subarray(0, FOOTER_SIZE));
  if (!hasFooterCookie(buf)) throw corrupt(file, `no VHD footer ("conectix") ${where}`);
  const stored = buf.readUInt32BE(CHECKSUM_AT);
  if (vhdChecksum(buf, CHECKSUM_AT) !== stored) {
    throw corrupt(file, `the VHD footer ${where} has a wrong checksum (0x${stored.toString(16)}, the bytes sum to 0x${vhdChecksum(buf, CHECKSUM_AT).toString(16)})`);
  }
  const diskType = buf.readUInt32BE(60);
  if (diskType !== DISK_FIXED && diskType !== DISK_DYNAMIC && diskType !== DISK_DIFFERENCING) {
    throw corrupt(file, `the VHD footer ${where} has unknown disk type ${diskType}`);
  }
  return {
    features: buf.readUInt32BE(8),
    version: buf.readUInt32BE(12),
    dataOffset: buf.readBigUInt64BE(16) === 0xffffffffffffffffn ? -1 : u64(buf, 16),
    timestamp: buf.readUInt32BE(24),
    creatorApp: fourCc(buf, 28),
    creatorVersion: buf.readUInt32BE(32),
    creatorHostOs: fourCc(buf, 36),
    originalSize: u64(buf, 40),
    currentSize: u64(buf, 48),
    chs: { cylinders: buf.readUInt16BE(56), heads: buf[58], sectors: buf[59] },
    diskType,
    checksum: stored,
    uuid: readUuid(buf, 68),
    savedState: buf[84] !== 0,
  };
}

export function serializeFooter(f: Footer): Buffer {
  const buf = Buffer.alloc(FOOTER_SIZE);
  COOKIE.copy(buf, 0);
  buf.writeUInt32BE(f.features >>> 0, 8);
  buf.writeUInt32BE(f.version >>> 0, 12);
  buf.writeBigUInt64BE(f.dataOffset < 0 ? 0xffffffffffffffffn : BigInt(f.dataOffset), 16);
  buf.writeUInt32BE(f.timestamp >>> 0, 24);
  buf.write(f.creatorApp.padEnd(4, ' ').slice(0, 4), 28, 'latin1');
  buf.writeUInt32BE(f.creatorVersion >>> 0, 32);
  buf.write(f.creatorHostOs.padEnd(4, ' ').slice(0, 4), 36, 'latin1');
  buf.writeBigUInt64BE(BigInt(f.originalSize), 40);
  buf.writeBigUInt64BE(BigInt(f.currentSize), 48);
  buf.writeUInt16BE(f.chs.cylinders, 56);
  buf[58] = f.chs.heads;
  buf[59] = f.chs.sectors;
  buf.writeUInt32BE(f.diskType, 60);
  writeUuid(buf, 68, f.uuid);
  buf[84] = f.savedState ? 1 : 0;
  buf.writeUInt32BE(vhdChecksum(buf, CHECKSUM_AT), CHECKSUM_AT);
  return buf;
}

/** Now, in the footer's clock. */
export function vhdNow(): number {
  return Math.max(0, Math.floor(Date.now() / 1000) - VHD_EPOCH);
}

export function vhdTimeToIso(t: number): string {
  return new Date((t + VHD_EPOCH) * 1000).toISOString();
}
