import { closeSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { crc32c } from '@node-rs/crc32';

/**
 * Hostile VHDX files made from a peer-made image by editing it in place (sparse where large): huge
 * logs and log entries, huge metadata items, BATs of millions of bad entries. Offsets follow
 * ../shared/docs/vhdx-format.md.
 */

const KiB = 1024;
const MiB = 1024 * KiB;
const H1 = 64 * KiB;
const H2 = 128 * KiB;
const RT = [192 * KiB, 256 * KiB];
const BAT_GUID = '6677c22d';
const META_GUID = '06a27c8b';
/** Any non-zero log GUID, in its on-disk bytes. */
export const LOG_GUID = Buffer.from('00112233445566778899aabbccddeeff', 'hex');

function pread(fd: number, length: number, position: number): Buffer {
  const b = Buffer.alloc(length);
  readSync(fd, b, 0, length, position);
  return b;
}

function pwrite(fd: number, b: Buffer, position: number): void {
  writeSync(fd, b, 0, b.length, position);
}

function seal(b: Buffer, field = 4): void {
  b.writeUInt32LE(0, field);
  b.writeUInt32LE(crc32c(b) >>> 0, field);
}

function withFile<T>(path: string, fn: (fd: number) => T): T {
  const fd = openSync(path, 'r+');
  try {
    return fn(fd);
  } finally {
    closeSync(fd);
  }
}

const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;

/** Where the BAT and metadata regions are, from region table 1. */
export function regions(path: string): { bat: number; batLength: number; metadata: number; metadataLength: number } {
  return withFile(path, (fd) => {
    const t = pread(fd, 64 * KiB, RT[0]);
    const out = { bat: 0, batLength: 0, metadata: 0, metadataLength: 0 };
    for (let i = 0; i < t.readUInt32LE(8); i++) {
      const o = 16 + i * 32;
      const id = t.subarray(o, o + 4).toString('hex');
      if (id === BAT_GUID) [out.bat, out.batLength] = [Number(t.readBigUInt64LE(o + 16)), t.readUInt32LE(o + 24)];
      if (id === META_GUID) [out.metadata, out.metadataLength] = [Number(t.readBigUInt64LE(o + 16)), t.readUInt32LE(o + 24)];
    }
    return out;
  });
}

/** Rewrites both headers' log fields (GUID, length, offset) and their checksums. */
export function setLog(path: string, log: { offset: number; length: number; guid: Buffer }): void {
  withFile(path, (fd) => {
    for (const at of [H1, H2]) {
      const h = pread(fd, 4 * KiB, at);
      log.guid.copy(h, 48);
      h.writeUInt32LE(log.length, 68);
      h.writeBigUInt64LE(BigInt(log.offset), 72);
      seal(h);
      pwrite(fd, h, at);
    }
  });
}

export type Descriptor = { kind: 'zero'; fileOffset: number; length: number } | { kind: 'data'; fileOffset: number; fill: number };

/**
 * Writes one log entry at `logOffset` with a correct checksum however long it is (the padding past
 * its sectors is zeros, checksummed a MiB at a time).
 */
export function writeLogEntry(
  path: string,
  logOffset: number,
  e: { entryLength?: number; sequence?: bigint; descriptors?: Descriptor[]; flushed?: number; last?: number },
): void {
  withFile(path, (fd) => {
    const size = fstatSync(fd).size;
    const descs = e.descriptors ?? [];
    const descSectors = Math.ceil((descs.length + 2) / 128);
    const dataCount = descs.filter((d) => d.kind === 'data').length;
    const needed = (descSectors + dataCount) * 4 * KiB;
    const length = e.entryLength ?? needed;
    const seq = e.sequence ?? 1n;
    const head = Buffer.alloc(needed);
    head.writeUInt32LE(0x65676f6c, 0);
    head.writeUInt32LE(length, 8);
    head.writeUInt32LE(0, 12);
    head.writeBigUInt64LE(seq, 16);
    head.writeUInt32LE(descs.length, 24);
    LOG_GUID.copy(head, 32);
    head.writeBigUInt64LE(BigInt(e.flushed ?? size), 48);
    head.writeBigUInt64LE(BigInt(e.last ?? size), 56);
    let sector = descSectors;
    descs.forEach((d, i) => {
      const o = i < 126 ? 64 + i * 32 : 4096 * (1 + Math.floor((i - 126) / 128)) + ((i - 126) % 128) * 32;
      head.writeBigUInt64LE(BigInt(d.fileOffset), o + 16);
      head.writeBigUInt64LE(seq, o + 24);
      if (d.kind === 'zero') {
        head.writeUInt32LE(0x6f72657a, o);
        head.writeBigUInt64LE(BigInt(d.length), o + 8);
      } else {
        head.writeUInt32LE(0x63736564, o);
        head.fill(d.fill, o + 4, o + 16);
        const s = sector++ * 4096;
        head.fill(d.fill, s, s + 4096);
        head.writeUInt32LE(0x61746164, s);
        head.writeUInt32LE(Number(seq >> 32n), s + 4);
        head.writeUInt32LE(Number(seq & 0xffffffffn), s + 4092);
      }
    });
    let crc = crc32c(head);
    const zeros = Buffer.alloc(MiB);
    for (let done = needed; done < length; done += zeros.length) crc = crc32c(zeros.subarray(0, Math.min(zeros.length, length - done)), crc);
    head.writeUInt32LE(crc >>> 0, 4);
    pwrite(fd, head, logOffset);
  });
}

/** A log of `length` bytes placed past the end of the file (sparse), holding one valid entry of `entryLength`. */
export function hugeLog(path: string, length: number, entryLength: number): void {
  const offset = withFile(path, (fd) => {
    const at = roundUp(fstatSync(fd).size, MiB);
    ftruncateSync(fd, at + length);
    return at;
  });
  setLog(path, { offset, length, guid: LOG_GUID });
  writeLogEntry(path, offset, { entryLength });
}

/** A parent locator of the VHDX type with no key-value entries. */
function defaultLocator(): Buffer {
  const locator = Buffer.alloc(20);
  Buffer.from('b7ef4ab09ed1814ab78925b8e9445913', 'hex').copy(locator, 0);
  return locator;
}

/**
 * Marks the image differencing and gives it a parent locator item of `itemLength` bytes: the
 * metadata region moves past the end of the file (sparse) and grows to hold it.
 */
export function hugeParentLocator(path: string, itemLength: number, locator: Buffer = defaultLocator()): void {
  const r = regions(path);
  withFile(path, (fd) => {
    const table = pread(fd, MiB, r.metadata);
    const at = roundUp(fstatSync(fd).size, MiB);
    const regionLength = roundUp(MiB + itemLength, MiB);
    ftruncateSync(fd, at + regionLength);
    // File parameters: set HasParent.
    const n = table.readUInt16LE(10);
    for (let i = 0; i < n; i++) {
      const o = 32 + i * 32;
      if (table.readUInt32LE(o) === 0xcaa16737) table.writeUInt32LE(table.readUInt32LE(table.readUInt32LE(o + 16) + 4) | 2, table.readUInt32LE(o + 16) + 4);
    }
    const o = 32 + n * 32;
    Buffer.from('2d5fd3a80bb34d45abf7d3d84834ab0c', 'hex').copy(table, o);
    table.writeUInt32LE(MiB, o + 16);
    table.writeUInt32LE(itemLength, o + 20);
    table.writeUInt32LE(4, o + 24); // IsRequired
    table.writeUInt16LE(n + 1, 10);
    pwrite(fd, table, at);
    pwrite(fd, locator, at + MiB);
    for (const rt of RT) {
      const t = pread(fd, 64 * KiB, rt);
      for (let i = 0; i < t.readUInt32LE(8); i++) {
        const e = 16 + i * 32;
        if (t.subarray(e, e + 4).toString('hex') === META_GUID) {
          t.writeBigUInt64LE(BigInt(at), e + 16);
          t.writeUInt32LE(regionLength, e + 24);
        }
      }
      seal(t);
      pwrite(fd, t, rt);
    }
  });
}

/**
 * Fills the first `entries` BAT entries with `entry(index)`, a u64 given as a number (state in bits
 * 0-2, MiB offset from bit 20), a MiB of entries at a time.
 */
export function fillBat(path: string, entries: number, entry: (index: number) => number): void {
  const r = regions(path);
  withFile(path, (fd) => {
    const per = MiB / 8;
    const buf = Buffer.alloc(MiB);
    for (let first = 0; first < entries; first += per) {
      const n = Math.min(per, entries - first);
      for (let k = 0; k < n; k++) {
        const v = entry(first + k);
        buf.writeUInt32LE(v % 2 ** 32, k * 8);
        buf.writeUInt32LE(Math.floor(v / 2 ** 32), k * 8 + 4);
      }
      pwrite(fd, buf.subarray(0, n * 8), r.bat + first * 8);
    }
  });
}

/** Appends one MiB-aligned block of `size` bytes holding `fill`; returns its file offset. */
export function appendBlock(path: string, size: number, fill: number): number {
  return withFile(path, (fd) => {
    const at = roundUp(fstatSync(fd).size, MiB);
    pwrite(fd, Buffer.alloc(size, fill), at);
    return at;
  });
}
