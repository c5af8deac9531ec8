import { corrupt } from '../../errors.js';
import { HEADER_SIZE, SECTOR, vhdChecksum } from './constants.js';
import { readUuid, writeUuid } from './uuid.js';

/** One of the eight parent locator entries of a differencing disk's header. */
export interface LocatorEntry {
  /** 'W2ku', 'W2ru', 'Mac ', 'MacX', ... ('' for an empty entry). */
  code: string;
  /** The space reserved, as written (bytes by Windows, sectors by the specification's word). */
  dataSpace: number;
  dataLength: number;
  dataOffset: number;
}

/** The dynamic disk header ("cxsparse"), 1024 bytes at the footer's data offset. */
export interface DynamicHeader {
  tableOffset: number;
  version: number;
  maxTableEntries: number;
  blockSize: number;
  checksum: number;
  parentUuid: string;
  parentTimestamp: number;
  /** The parent's name (UTF-16 big-endian on disk). */
  parentName: string;
  locators: LocatorEntry[];
}

const COOKIE = Buffer.from('cxsparse', 'latin1');
const CHECKSUM_AT = 36;
const LOCATORS_AT = 576;
const LOCATOR_SIZE = 24;
const NAME_AT = 64;
const NAME_BYTES = 512;

function u64(buf: Buffer, at: number): number {
  const v = buf.readBigUInt64BE(at);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(v);
}

function utf16be(buf: Buffer): string {
  const le = Buffer.alloc(buf.length);
  for (let i = 0; i + 1 < buf.length; i += 2) {
    le[i] = buf[i + 1];
    le[i + 1] = buf[i];
  }
  const s = le.toString('utf16le');
  const nul = s.indexOf('\0');
  return nul >= 0 ? s.slice(0, nul) : s;
}

function toUtf16be(s: string, max: number): Buffer {
  const le = Buffer.from(s, 'utf16le').subarray(0, max);
  const be = Buffer.alloc(le.length);
  for (let i = 0; i + 1 < le.length; i += 2) {
    be[i] = le[i + 1];
    be[i + 1] = le[i];
  }
  return be;
}

export function parseDynamicHeader(file: string, buf: Buffer, at: number): DynamicHeader {
  if (!buf.subarray(0, 8).equals(COOKIE)) throw corrupt(file, `no dynamic disk header ("cxsparse") at offset ${at}`);
  const stored = buf.readUInt32BE(CHECKSUM_AT);
  const sum = vhdChecksum(buf.subarray(0, HEADER_SIZE), CHECKSUM_AT);
  if (sum !== stored) throw corrupt(file, `the dynamic disk header at offset ${at} has a wrong checksum (0x${stored.toString(16)}, the bytes sum to 0x${sum.toString(16)})`);
  const tableOffset = u64(buf, 16);
  const blockSize = buf.readUInt32BE(32);
  const maxTableEntries = buf.readUInt32BE(28);
  if (tableOffset < 0) throw corrupt(file, `the dynamic disk header at offset ${at} has BAT offset ${buf.readBigUInt64BE(16)}, past any file`);
  // A power of two from a sector up: the BAT and bitmap arithmetic (and QEMU) rely on it.
  if (blockSize < SECTOR || (blockSize & (blockSize - 1)) !== 0) {
    throw corrupt(file, `the dynamic disk header at offset ${at} has block size ${blockSize}, not a power of two of at least 512`);
  }
  const locators: LocatorEntry[] = [];
  for (let i = 0; i < 8; i++) {
    const o = LOCATORS_AT + i * LOCATOR_SIZE;
    const code = buf.readUInt32BE(o) === 0 ? '' : buf.toString('latin1', o, o + 4);
    locators.push({ code, dataSpace: buf.readUInt32BE(o + 4), dataLength: buf.readUInt32BE(o + 8), dataOffset: u64(buf, o + 16) });
  }
  return {
    tableOffset,
    version: buf.readUInt32BE(24),
    maxTableEntries,
    blockSize,
    checksum: stored,
    parentUuid: readUuid(buf, 40),
    parentTimestamp: buf.readUInt32BE(56),
    parentName: utf16be(buf.subarray(NAME_AT, NAME_AT + NAME_BYTES)),
    locators,
  };
}

export function serializeDynamicHeader(h: Omit<DynamicHeader, 'checksum'>): Buffer {
  const buf = Buffer.alloc(HEADER_SIZE);
  COOKIE.copy(buf, 0);
  buf.writeBigUInt64BE(0xffffffffffffffffn, 8);
  buf.writeBigUInt64BE(BigInt(h.tableOffset), 16);
  buf.writeUInt32BE(h.version, 24);
  buf.writeUInt32BE(h.maxTableEntries, 28);
  buf.writeUInt32BE(h.blockSize, 32);
  writeUuid(buf, 40, h.parentUuid);
  buf.writeUInt32BE(h.parentTimestamp >>> 0, 56);
  toUtf16be(h.parentName, NAME_BYTES).copy(buf, NAME_AT);
  h.locators.slice(0, 8).forEach((l, i) => {
    const o = LOCATORS_AT + i * LOCATOR_SIZE;
    if (!l.code) return;
    buf.write(l.code, o, 'latin1');
    buf.writeUInt32BE(l.dataSpace, o + 4);
    buf.writeUInt32BE(l.dataLength, o + 8);
    buf.writeBigUInt64BE(BigInt(l.dataOffset), o + 16);
  });
  buf.writeUInt32BE(vhdChecksum(buf, CHECKSUM_AT), CHECKSUM_AT);
  return buf;
}

/** The header's raw bytes (changed in place by the caller) with their checksum recomputed. */
export function rechecksumHeader(raw: Buffer): Buffer {
  raw.writeUInt32BE(vhdChecksum(raw.subarray(0, HEADER_SIZE), CHECKSUM_AT), CHECKSUM_AT);
  return raw;
}

/** Byte offset of the max table entries field (in the header's first sector, with the checksum). */
export const MAX_TABLE_ENTRIES_AT = 28;
