import { MAX_TABLE_ENTRIES, METADATA_TABLE_SIZE } from './constants.js';
import { readGuid, writeGuid } from './guid.js';

const SIGNATURE = 'metadata';
const ENTRY_SIZE = 32;
const ENTRIES_OFFSET = 32;

export const FLAG_IS_USER = 1;
export const FLAG_IS_VIRTUAL_DISK = 2;
export const FLAG_IS_REQUIRED = 4;

export interface MetadataEntry {
  itemId: string;
  /** From the start of the metadata region. */
  offset: number;
  length: number;
  isUser: boolean;
  isVirtualDisk: boolean;
  isRequired: boolean;
}

export type MetadataTableParse = { ok: true; entries: MetadataEntry[] } | { ok: false; reason: string };

export function parseMetadataTable(buf: Buffer): MetadataTableParse {
  if (buf.length < METADATA_TABLE_SIZE) return { ok: false, reason: 'short read' };
  if (buf.toString('latin1', 0, 8) !== SIGNATURE) return { ok: false, reason: 'bad signature' };
  const count = buf.readUInt16LE(10);
  if (count > MAX_TABLE_ENTRIES) return { ok: false, reason: `entry count ${count} exceeds ${MAX_TABLE_ENTRIES}` };
  const entries: MetadataEntry[] = [];
  for (let i = 0; i < count; i++) {
    const o = ENTRIES_OFFSET + i * ENTRY_SIZE;
    const flags = buf.readUInt32LE(o + 24);
    entries.push({
      itemId: readGuid(buf, o),
      offset: buf.readUInt32LE(o + 16),
      length: buf.readUInt32LE(o + 20),
      isUser: (flags & FLAG_IS_USER) !== 0,
      isVirtualDisk: (flags & FLAG_IS_VIRTUAL_DISK) !== 0,
      isRequired: (flags & FLAG_IS_REQUIRED) !== 0,
    });
  }
  return { ok: true, entries };
}

export function serializeMetadataTable(entries: MetadataEntry[]): Buffer {
  const buf = Buffer.alloc(METADATA_TABLE_SIZE);
  buf.write(SIGNATURE, 0, 'latin1');
  buf.writeUInt16LE(entries.length, 10);
  entries.forEach((e, i) => {
    const o = ENTRIES_OFFSET + i * ENTRY_SIZE;
    writeGuid(buf, o, e.itemId);
    buf.writeUInt32LE(e.offset, o + 16);
    buf.writeUInt32LE(e.length, o + 20);
    const flags =
      (e.isUser ? FLAG_IS_USER : 0) | (e.isVirtualDisk ? FLAG_IS_VIRTUAL_DISK : 0) | (e.isRequired ? FLAG_IS_REQUIRED : 0);
    buf.writeUInt32LE(flags, o + 24);
  });
  return buf;
}

/** File parameters item: block size and the fixed / differencing flags. */
export interface FileParameters {
  blockSize: number;
  leaveBlocksAllocated: boolean;
  hasParent: boolean;
}

export function parseFileParameters(buf: Buffer): FileParameters {
  const flags = buf.readUInt32LE(4);
  return { blockSize: buf.readUInt32LE(0), leaveBlocksAllocated: (flags & 1) !== 0, hasParent: (flags & 2) !== 0 };
}

export function serializeFileParameters(p: FileParameters): Buffer {
  const buf = Buffer.alloc(8);
  buf.writeUInt32LE(p.blockSize, 0);
  buf.writeUInt32LE((p.leaveBlocksAllocated ? 1 : 0) | (p.hasParent ? 2 : 0), 4);
  return buf;
}

/** Parent locator item: a type GUID and UTF-16LE key/value pairs. */
export interface ParentLocator {
  locatorType: string;
  entries: Record<string, string>;
}

export type ParentLocatorParse = { ok: true; locator: ParentLocator } | { ok: false; reason: string };

export function parseParentLocator(buf: Buffer): ParentLocatorParse {
  if (buf.length < 20) return { ok: false, reason: 'shorter than its 20-byte header' };
  const locatorType = readGuid(buf, 0);
  const count = buf.readUInt16LE(18);
  if (20 + count * 12 > buf.length) return { ok: false, reason: `${count} key-value entries do not fit in ${buf.length} bytes` };
  const entries: Record<string, string> = {};
  for (let i = 0; i < count; i++) {
    const o = 20 + i * 12;
    const keyOff = buf.readUInt32LE(o);
    const valOff = buf.readUInt32LE(o + 4);
    const keyLen = buf.readUInt16LE(o + 8);
    const valLen = buf.readUInt16LE(o + 10);
    if (keyOff + keyLen > buf.length || valOff + valLen > buf.length) {
      return { ok: false, reason: `key-value entry ${i} points outside the locator` };
    }
    entries[buf.toString('utf16le', keyOff, keyOff + keyLen)] = buf.toString('utf16le', valOff, valOff + valLen);
  }
  return { ok: true, locator: { locatorType, entries } };
}

export function serializeParentLocator(loc: ParentLocator): Buffer {
  const pairs = Object.entries(loc.entries).map(([k, v]) => [Buffer.from(k, 'utf16le'), Buffer.from(v, 'utf16le')]);
  const headerLen = 20 + pairs.length * 12;
  const total = headerLen + pairs.reduce((n, [k, v]) => n + k.length + v.length, 0);
  const buf = Buffer.alloc(total);
  writeGuid(buf, 0, loc.locatorType);
  buf.writeUInt16LE(pairs.length, 18);
  let at = headerLen;
  pairs.forEach(([k, v], i) => {
    const o = 20 + i * 12;
    buf.writeUInt32LE(at, o);
    k.copy(buf, at);
    at += k.length;
    buf.writeUInt32LE(at, o + 4);
    v.copy(buf, at);
    at += v.length;
    buf.writeUInt16LE(k.length, o + 8);
    buf.writeUInt16LE(v.length, o + 10);
  });
  return buf;
}
