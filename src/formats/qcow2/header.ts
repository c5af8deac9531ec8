import { VdiskError, corrupt, unsupported } from '../../errors.js';
import {
  COMPRESSION_ZLIB, COMPRESSION_ZSTD, INCOMPAT_COMPRESSION, INCOMPAT_DATA_FILE, INCOMPAT_EXTL2, INCOMPAT_KNOWN,
  MAX_CLUSTER_BITS, MAX_SNAPSHOTS, MIN_CLUSTER_BITS, QCOW2_MAGIC, V2_HEADER_LENGTH, V3_HEADER_LENGTH,
  V3_HEADER_LENGTH_WRITTEN, u64, writeEntry,
} from './constants.js';

/** The fixed header at offset 0 (qcow2.txt "Header"), big-endian; version 2 ends at byte 72. */
export interface Qcow2Header {
  version: 2 | 3;
  backingFileOffset: number;
  backingFileSize: number;
  clusterBits: number;
  size: number;
  cryptMethod: number;
  l1Size: number;
  l1TableOffset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  nbSnapshots: number;
  snapshotsOffset: number;
  incompatible: number;
  compatible: number;
  autoclear: number;
  refcountOrder: number;
  headerLength: number;
  compressionType: number;
}

/** The high 32 bits of the feature words are all unknown bits: kept apart so one number holds the rest. */
export interface FeatureHighBits {
  incompatibleHigh: number;
}

function field(path: string, b: Buffer, at: number, name: string): number {
  const v = u64(b, at);
  if (v === null) throw corrupt(path, `qcow2 header: ${name} is beyond 2^53`);
  return v;
}

/**
 * Parses and checks the header (the first cluster's first bytes, at least 112 given). Unknown
 * incompatible feature bits are refused, naming them from the feature table when `names` has them.
 */
export function parseHeader(path: string, b: Buffer, featureName: (bit: number) => string | undefined = () => undefined): Qcow2Header {
  if (b.readUInt32BE(0) !== QCOW2_MAGIC) throw corrupt(path, 'not a qcow2 image (no QFI\\xfb magic)');
  const version = b.readUInt32BE(4);
  if (version !== 2 && version !== 3) throw unsupported(path, `qcow2 version ${version} (vdisk reads versions 2 and 3)`);
  const clusterBits = b.readUInt32BE(20);
  if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
    throw corrupt(path, `qcow2 header: cluster_bits ${clusterBits} is outside 9..21`);
  }
  const h: Qcow2Header = {
    version,
    backingFileOffset: field(path, b, 8, 'backing_file_offset'),
    backingFileSize: b.readUInt32BE(16),
    clusterBits,
    size: field(path, b, 24, 'size'),
    cryptMethod: b.readUInt32BE(32),
    l1Size: b.readUInt32BE(36),
    l1TableOffset: field(path, b, 40, 'l1_table_offset'),
    refcountTableOffset: field(path, b, 48, 'refcount_table_offset'),
    refcountTableClusters: b.readUInt32BE(56),
    nbSnapshots: b.readUInt32BE(60),
    snapshotsOffset: field(path, b, 64, 'snapshots_offset'),
    incompatible: 0,
    compatible: 0,
    autoclear: 0,
    refcountOrder: 4,
    headerLength: V2_HEADER_LENGTH,
    compressionType: COMPRESSION_ZLIB,
  };
  if (version === 3) {
    const incompatHigh = b.readUInt32BE(72);
    h.incompatible = b.readUInt32BE(76);
    h.compatible = b.readUInt32BE(84);
    h.autoclear = b.readUInt32BE(92);
    h.refcountOrder = b.readUInt32BE(96);
    h.headerLength = b.readUInt32BE(100);
    const unknown: number[] = [];
    for (let bit = 0; bit < 32; bit++) if ((incompatHigh >>> bit) & 1) unknown.push(bit + 32);
    for (let bit = 0; bit < 32; bit++) if (((h.incompatible & ~INCOMPAT_KNOWN) >>> bit) & 1) unknown.push(bit);
    if (unknown.length) {
      const names = unknown.map((bit) => featureName(bit) ?? `bit ${bit}`);
      throw unsupported(path, `qcow2 image uses unknown incompatible features: ${names.join(', ')}`);
    }
    if (h.headerLength < V3_HEADER_LENGTH || h.headerLength > 1 << clusterBits || h.headerLength % 8 !== 0 && h.headerLength > V3_HEADER_LENGTH_WRITTEN) {
      throw corrupt(path, `qcow2 header: header_length ${h.headerLength} is not a valid length`);
    }
    if (h.refcountOrder > 6) throw corrupt(path, `qcow2 header: refcount_order ${h.refcountOrder} is above 6`);
    if (h.headerLength > V3_HEADER_LENGTH) h.compressionType = b[104];
    if (h.compressionType !== COMPRESSION_ZLIB && h.compressionType !== COMPRESSION_ZSTD) {
      throw unsupported(path, `qcow2 compression type ${h.compressionType} (vdisk knows zlib and zstd)`);
    }
    if ((h.compressionType !== COMPRESSION_ZLIB) !== ((h.incompatible & INCOMPAT_COMPRESSION) !== 0)) {
      throw corrupt(path, 'qcow2 header: the compression type and its incompatible feature bit disagree');
    }
    if ((h.incompatible & INCOMPAT_EXTL2) && clusterBits < 14) {
      throw corrupt(path, `qcow2 header: extended L2 entries with ${1 << clusterBits}-byte clusters (16 KiB at least)`);
    }
  }
  if (h.cryptMethod !== 0) {
    throw unsupported(path, `encrypted qcow2 image (crypt_method ${h.cryptMethod} is ${h.cryptMethod === 1 ? 'AES' : h.cryptMethod === 2 ? 'LUKS' : 'unknown'}); vdisk does not decrypt`);
  }
  if (h.nbSnapshots > MAX_SNAPSHOTS) throw corrupt(path, `qcow2 header: ${h.nbSnapshots} snapshots (at most ${MAX_SNAPSHOTS})`);
  const cs = 1 << clusterBits;
  for (const [name, off] of [['l1_table_offset', h.l1TableOffset], ['refcount_table_offset', h.refcountTableOffset], ['snapshots_offset', h.snapshotsOffset]] as const) {
    if (off % cs !== 0) throw corrupt(path, `qcow2 header: ${name} ${off} is not aligned to a cluster`);
  }
  if (h.backingFileOffset !== 0 && (h.backingFileSize > 1023 || h.backingFileOffset + h.backingFileSize > cs)) {
    throw corrupt(path, `qcow2 header: the backing file name (${h.backingFileSize} bytes at ${h.backingFileOffset}) is not inside the first cluster`);
  }
  if ((h.incompatible & INCOMPAT_DATA_FILE) && h.backingFileOffset !== 0) {
    throw corrupt(path, 'qcow2 header: an image with an external data file cannot have a backing file');
  }
  return h;
}

/** The header's bytes: 72 for version 2, 112 for version 3 (with the compression type). */
export function serializeHeader(h: Qcow2Header): Buffer {
  const b = Buffer.alloc(h.version === 2 ? V2_HEADER_LENGTH : V3_HEADER_LENGTH_WRITTEN);
  b.writeUInt32BE(QCOW2_MAGIC, 0);
  b.writeUInt32BE(h.version, 4);
  writeEntry(b, 8, h.backingFileOffset);
  b.writeUInt32BE(h.backingFileSize, 16);
  b.writeUInt32BE(h.clusterBits, 20);
  writeEntry(b, 24, h.size);
  b.writeUInt32BE(h.cryptMethod, 32);
  b.writeUInt32BE(h.l1Size, 36);
  writeEntry(b, 40, h.l1TableOffset);
  writeEntry(b, 48, h.refcountTableOffset);
  b.writeUInt32BE(h.refcountTableClusters, 56);
  b.writeUInt32BE(h.nbSnapshots, 60);
  writeEntry(b, 64, h.snapshotsOffset);
  if (h.version === 3) {
    b.writeUInt32BE(h.incompatible >>> 0, 76);
    b.writeUInt32BE(h.compatible >>> 0, 84);
    b.writeUInt32BE(h.autoclear >>> 0, 92);
    b.writeUInt32BE(h.refcountOrder, 96);
    b.writeUInt32BE(V3_HEADER_LENGTH_WRITTEN, 100);
    b[104] = h.compressionType;
  }
  return b;
}

export function checkedHeaderForCreate(h: Qcow2Header): Qcow2Header {
  if (h.version === 2 && (h.incompatible || h.compatible || h.autoclear)) throw new VdiskError('USAGE', 'compat=0.10 images have no feature bits (lazy_refcounts, extended_l2, compression_type need compat=1.1)');
  return h;
}
