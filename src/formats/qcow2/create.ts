import { VdiskError } from '../../errors.js';
import type { PositionalFile } from '../../io/file.js';
import { parseSize } from '../../util/size.js';
import type { CreateRequest } from '../driver.js';
import {
  COMPAT_LAZY_REFCOUNTS, COMPRESSION_ZLIB, COMPRESSION_ZSTD, INCOMPAT_COMPRESSION, INCOMPAT_EXTL2, MAX_L1_BYTES, writeEntry,
} from './constants.js';
import { serializeExtensions } from './extensions.js';
import { serializeHeader, type Qcow2Header } from './header.js';
import { l1EntriesFor } from './layout.js';
import { refcountMetadataClusters, setRefcount } from './refcounts.js';

export const QCOW2_CREATE_OPTIONS: Record<string, string> = {
  compat: '0.10 (or v2) or 1.1 (or v3, the default)',
  cluster_size: 'cluster size, a power of two from 512 to 2M (default 64k)',
  lazy_refcounts: 'on or off (default off; needs compat=1.1)',
  extended_l2: 'on: 32 subclusters per cluster (needs compat=1.1 and 16k clusters or more; default off)',
  refcount_bits: 'width of a refcount, a power of two from 1 to 64 (default 16)',
  compression_type: 'zlib (default) or zstd (needs compat=1.1): how compressed clusters (-c) are compressed',
  backing_file: 'the backing image (as -b)',
  backing_fmt: 'the backing image\'s format (as -F)',
  preallocation: 'off only',
  compress: 'on: convert writes every cluster compressed (qemu-img convert -c); default off',
};

export interface Qcow2Options {
  version: 2 | 3;
  clusterBits: number;
  lazyRefcounts: boolean;
  extendedL2: boolean;
  refcountOrder: number;
  compressionType: number;
  compress: boolean;
  backingFile?: string;
  backingFormat?: string;
}

function onOff(key: string, v: string): boolean {
  if (['on', 'true', 'yes'].includes(v)) return true;
  if (['off', 'false', 'no'].includes(v)) return false;
  throw new VdiskError('USAGE', `-o ${key}: expected on or off, not '${v}'`);
}

/** The -o pairs (and -b/-F) as qcow2 options, checked together as qemu-img checks them. */
export function qcow2Options(req: Pick<CreateRequest, 'options' | 'backing'>): Qcow2Options {
  const o: Qcow2Options = { version: 3, clusterBits: 16, lazyRefcounts: false, extendedL2: false, refcountOrder: 4, compressionType: COMPRESSION_ZLIB, compress: false };
  const v = req.options;
  if (v.compat !== undefined) {
    if (v.compat === '0.10' || v.compat === 'v2') o.version = 2;
    else if (v.compat === '1.1' || v.compat === 'v3') o.version = 3;
    else throw new VdiskError('USAGE', `-o compat: expected 0.10 or 1.1, not '${v.compat}'`);
  }
  if (v.cluster_size !== undefined) {
    const cs = parseSize(v.cluster_size, '-o cluster_size');
    if (cs < 512 || cs > 2 * 1024 * 1024 || (cs & (cs - 1)) !== 0) throw new VdiskError('USAGE', `-o cluster_size: ${cs} is not a power of two from 512 to 2M`);
    o.clusterBits = Math.log2(cs);
  }
  if (v.lazy_refcounts !== undefined) o.lazyRefcounts = onOff('lazy_refcounts', v.lazy_refcounts);
  if (v.extended_l2 !== undefined) o.extendedL2 = onOff('extended_l2', v.extended_l2);
  if (v.compress !== undefined) o.compress = onOff('compress', v.compress);
  if (v.refcount_bits !== undefined) {
    const bits = Number(v.refcount_bits);
    if (![1, 2, 4, 8, 16, 32, 64].includes(bits)) throw new VdiskError('USAGE', `-o refcount_bits: expected a power of two from 1 to 64, not '${v.refcount_bits}'`);
    o.refcountOrder = Math.log2(bits);
  }
  if (v.compression_type !== undefined) {
    if (v.compression_type === 'zlib') o.compressionType = COMPRESSION_ZLIB;
    else if (v.compression_type === 'zstd') o.compressionType = COMPRESSION_ZSTD;
    else throw new VdiskError('USAGE', `-o compression_type: expected zlib or zstd, not '${v.compression_type}'`);
  }
  if (v.preallocation !== undefined && v.preallocation !== 'off') throw new VdiskError('UNSUPPORTED', `-o preallocation=${v.preallocation}: vdisk makes qcow2 images with preallocation=off only`);
  o.backingFile = req.backing?.path ?? v.backing_file;
  o.backingFormat = req.backing?.format ?? v.backing_fmt;
  if (o.backingFormat !== undefined && o.backingFile === undefined) throw new VdiskError('USAGE', '-o backing_fmt: needs a backing file (-b or -o backing_file)');
  if (o.version === 2) {
    const needs = [o.lazyRefcounts && 'lazy_refcounts', o.extendedL2 && 'extended_l2', o.compressionType !== COMPRESSION_ZLIB && 'compression_type=zstd', o.refcountOrder !== 4 && 'refcount_bits other than 16'].filter(Boolean);
    if (needs.length) throw new VdiskError('USAGE', `-o ${needs.join(', ')}: needs compat=1.1`);
  }
  if (o.extendedL2 && o.clusterBits < 14) throw new VdiskError('USAGE', '-o extended_l2=on: needs a cluster size of 16k or more');
  if (o.backingFile !== undefined && Buffer.byteLength(o.backingFile) > 1023) throw new VdiskError('USAGE', '-o backing_file: the name is longer than 1023 bytes');
  return o;
}

/** The header cluster, with its extensions and the backing file name after them. */
export function headerCluster(o: Qcow2Options, size: number, fields: Pick<Qcow2Header, 'l1Size' | 'l1TableOffset' | 'refcountTableOffset' | 'refcountTableClusters'>): Buffer {
  const cs = 2 ** o.clusterBits;
  const h: Qcow2Header = {
    version: o.version,
    backingFileOffset: 0,
    backingFileSize: 0,
    clusterBits: o.clusterBits,
    size,
    cryptMethod: 0,
    ...fields,
    nbSnapshots: 0,
    snapshotsOffset: 0,
    incompatible: (o.extendedL2 ? INCOMPAT_EXTL2 : 0) | (o.compressionType !== COMPRESSION_ZLIB ? INCOMPAT_COMPRESSION : 0),
    compatible: o.lazyRefcounts ? COMPAT_LAZY_REFCOUNTS : 0,
    autoclear: 0,
    refcountOrder: o.refcountOrder,
    headerLength: 0,
    compressionType: o.compressionType,
  };
  const ext = serializeExtensions({ backingFormat: o.backingFile !== undefined ? o.backingFormat : undefined });
  const name = o.backingFile !== undefined ? Buffer.from(o.backingFile, 'utf8') : Buffer.alloc(0);
  const headerLength = serializeHeader(h).length;
  if (name.length) {
    h.backingFileOffset = headerLength + ext.length;
    h.backingFileSize = name.length;
  }
  const header = serializeHeader(h);
  if (header.length + ext.length + name.length > cs) throw new VdiskError('USAGE', `the qcow2 header, its extensions and the backing file name do not fit in a ${cs}-byte cluster`);
  return Buffer.concat([header, ext, name, Buffer.alloc(cs - header.length - ext.length - name.length)]);
}

/**
 * A new, empty image: header cluster, refcount table, refcount blocks, then the L1 table (the
 * order QEMU uses), every metadata cluster counted once.
 */
export async function createQcow2(file: PositionalFile, req: CreateRequest): Promise<void> {
  const o = qcow2Options(req);
  if (!Number.isSafeInteger(req.size) || req.size < 0) throw new VdiskError('USAGE', `size must be a number of bytes, not ${req.size}`);
  const cs = 2 ** o.clusterBits;
  const l1Size = l1EntriesFor(req.size, cs, o.extendedL2);
  if (l1Size * 8 > MAX_L1_BYTES) throw new VdiskError('USAGE', `a ${req.size}-byte qcow2 image needs an L1 table above 32 MiB; use a larger cluster_size`);
  const l1Clusters = Math.ceil((l1Size * 8) / cs);
  const { blocks, table } = refcountMetadataClusters(1 + l1Clusters, cs, o.refcountOrder);
  const tableOffset = cs;
  const blocksOffset = tableOffset + table * cs;
  const l1Offset = blocksOffset + blocks * cs;
  const used = 1 + table + blocks + l1Clusters;
  const perBlock = (cs * 8) >> o.refcountOrder;
  const refBlocks = Buffer.alloc(blocks * cs);
  for (let c = 0; c < used; c++) setRefcount(refBlocks.subarray(Math.floor(c / perBlock) * cs), c % perBlock, o.refcountOrder, 1);
  const refTable = Buffer.alloc(table * cs);
  for (let b = 0; b < blocks; b++) writeEntry(refTable, b * 8, blocksOffset + b * cs);
  await file.writeAt(headerCluster(o, req.size, { l1Size, l1TableOffset: l1Offset, refcountTableOffset: tableOffset, refcountTableClusters: table }), 0);
  await file.writeAt(refTable, tableOffset);
  await file.writeAt(refBlocks, blocksOffset);
  // The L1 table reads as zeros: the file only needs to reach its end, as QEMU's does.
  await file.truncate(l1Offset + Math.max(l1Size * 8, 0));
  await file.flush();
}
