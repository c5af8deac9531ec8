import { HEADER_SIZE } from './constants.js';
import { readGuid, writeGuid } from './guid.js';
import { checksumMatches, sealChecksum } from './checksum.js';

export const HEADER_SIGNATURE = 0x64616568; // 'head'

export interface VhdxHeader {
  sequenceNumber: bigint;
  fileWriteGuid: string;
  dataWriteGuid: string;
  logGuid: string;
  logVersion: number;
  version: number;
  logLength: number;
  logOffset: number;
}

export type HeaderParse = { ok: true; header: VhdxHeader } | { ok: false; reason: string };

/** Parses one 4 KiB header slot; a slot that fails any check is reported with the reason, not thrown. */
export function parseHeader(buf: Buffer): HeaderParse {
  if (buf.length < HEADER_SIZE) return { ok: false, reason: 'short read' };
  const sig = buf.readUInt32LE(0);
  if (sig !== HEADER_SIGNATURE) {
    return { ok: false, reason: sig === 0 ? 'empty (no signature)' : 'bad signature' };
  }
  if (!checksumMatches(buf.subarray(0, HEADER_SIZE), 4)) return { ok: false, reason: 'checksum mismatch' };
  const header: VhdxHeader = {
    sequenceNumber: buf.readBigUInt64LE(8),
    fileWriteGuid: readGuid(buf, 16),
    dataWriteGuid: readGuid(buf, 32),
    logGuid: readGuid(buf, 48),
    logVersion: buf.readUInt16LE(64),
    version: buf.readUInt16LE(66),
    logLength: buf.readUInt32LE(68),
    logOffset: Number(buf.readBigUInt64LE(72)),
  };
  if (header.version !== 1) return { ok: false, reason: `unsupported version ${header.version}` };
  return { ok: true, header };
}

/** A 4 KiB header slot with its checksum. */
export function serializeHeader(h: VhdxHeader): Buffer {
  const buf = Buffer.alloc(HEADER_SIZE);
  buf.writeUInt32LE(HEADER_SIGNATURE, 0);
  buf.writeBigUInt64LE(h.sequenceNumber, 8);
  writeGuid(buf, 16, h.fileWriteGuid);
  writeGuid(buf, 32, h.dataWriteGuid);
  writeGuid(buf, 48, h.logGuid);
  buf.writeUInt16LE(h.logVersion, 64);
  buf.writeUInt16LE(h.version, 66);
  buf.writeUInt32LE(h.logLength, 68);
  buf.writeBigUInt64LE(BigInt(h.logOffset), 72);
  sealChecksum(buf, 4);
  return buf;
}
