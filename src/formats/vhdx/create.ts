import type { Stats } from 'node:fs';
import { PositionalFile } from '../../io/file.js';
import { nonZeroRuns } from '../../io/buffers.js';
import { ReplacingOutput, nodeKind, outputPlace } from '../../io/output.js';
import { VdiskError } from '../../errors.js';
import {
  GiB, HEADER1_OFFSET, HEADER2_OFFSET, HEADER_SECTION_SIZE, ITEM_FILE_PARAMETERS, ITEM_LOGICAL_SECTOR_SIZE,
  ITEM_PAGE83, ITEM_PARENT_LOCATOR, ITEM_PHYSICAL_SECTOR_SIZE, ITEM_VIRTUAL_DISK_SIZE, MAX_BLOCK_SIZE, MAX_VIRTUAL_SIZE, METADATA_TABLE_SIZE,
  MIN_BLOCK_SIZE, MiB, REGION_BAT, REGION_METADATA, REGION_TABLE1_OFFSET, REGION_TABLE2_OFFSET, TiB, isPowerOfTwo,
  roundUp,
} from './constants.js';
import { serializeFileIdentifier } from './file-identifier.js';
import { serializeHeader } from './header.js';
import { serializeRegionTable } from './region-table.js';
import { serializeFileParameters, serializeMetadataTable, serializeParentLocator, type MetadataEntry, type ParentLocator } from './metadata.js';
import { PAYLOAD_FULLY_PRESENT, PAYLOAD_ZERO, SB_PRESENT, batGeometry, encodeBatEntry, isBitmapEntry } from './bat.js';
import { ZERO_GUID, newGuid, writeGuid } from './guid.js';

export interface VhdxCreateOptions {
  size: number;
  subformat?: 'dynamic' | 'fixed';
  blockSize?: number;
  logSize?: number;
  logicalSectorSize?: number;
  physicalSectorSize?: number;
  blockStateZero?: boolean;
  creator?: string;
}

/** QEMU's default block size for a disk of `size` bytes, so that both tools make the same shape. */
export function defaultBlockSize(size: number): number {
  if (size > 32 * TiB) return 64 * MiB;
  if (size > 100 * GiB) return 32 * MiB;
  if (size > GiB) return 16 * MiB;
  return 8 * MiB;
}

/** Room for the locator in the 1 MiB metadata region after the table and the other items. */
const MAX_PARENT_LOCATOR = 512 * 1024;

function usage(msg: string): VdiskError {
  return new VdiskError('USAGE', msg);
}

/** Checks every option before any file exists, so a refused request leaves nothing behind. */
export function resolveCreateOptions(o: VhdxCreateOptions): Required<VhdxCreateOptions> {
  const logical = o.logicalSectorSize ?? 512;
  const physical = o.physicalSectorSize ?? (logical === 4096 ? 4096 : 512);
  if (logical !== 512 && logical !== 4096) throw usage(`logical_sector_size must be 512 or 4096, not ${logical}`);
  if (physical !== 512 && physical !== 4096) throw usage(`physical_sector_size must be 512 or 4096, not ${physical}`);
  if (!Number.isSafeInteger(o.size) || o.size <= 0) throw usage(`size must be a positive number of bytes, not ${o.size}`);
  if (o.size > MAX_VIRTUAL_SIZE) throw usage(`size ${o.size} is over the VHDX maximum of 64 TiB`);
  if (o.size % logical !== 0) throw usage(`size ${o.size} is not a multiple of the ${logical}-byte logical sector`);
  const blockSize = o.blockSize || defaultBlockSize(o.size);
  if (!isPowerOfTwo(blockSize) || blockSize < MIN_BLOCK_SIZE || blockSize > MAX_BLOCK_SIZE) {
    throw usage(`block_size must be a power of two from 1M to 256M, not ${blockSize}`);
  }
  const logSize = o.logSize ?? MiB;
  if (logSize < MiB || logSize % MiB !== 0 || logSize > 4 * GiB - MiB) {
    throw usage(`log_size must be a multiple of 1M from 1M to 4095M, not ${logSize}`);
  }
  return {
    size: o.size,
    subformat: o.subformat ?? 'dynamic',
    blockSize,
    logSize,
    logicalSectorSize: logical,
    physicalSectorSize: physical,
    blockStateZero: o.blockStateZero ?? false,
    creator: o.creator ?? 'vdisk',
  };
}

/**
 * Writes a new VHDX into an empty file. Fixed images get every payload block mapped to consecutive
 * space that the file system leaves sparse, so creation costs the same whatever the size.
 */
export async function writeNewVhdx(file: PositionalFile, o: Required<VhdxCreateOptions>, parent?: ParentLocator): Promise<void> {
  if (parent && o.subformat === 'fixed') throw usage('a differencing image cannot be fixed (-o subformat=fixed)');
  if (parent && o.blockStateZero) throw usage('-o block_state_zero: a differencing image reads its parent where it stores nothing');
  const g = batGeometry(o.blockSize, o.logicalSectorSize, o.size, parent !== undefined);
  const logOffset = HEADER_SECTION_SIZE;
  const batOffset = roundUp(logOffset + o.logSize, MiB);
  const batLength = roundUp(Math.max(g.totalEntries * 8, 1), MiB);
  const metadataOffset = batOffset + batLength;
  const metadataLength = MiB;
  const payloadStart = metadataOffset + metadataLength;
  const fixed = o.subformat === 'fixed';

  // Header section.
  const section = Buffer.alloc(HEADER_SECTION_SIZE);
  serializeFileIdentifier({ creator: o.creator }).copy(section, 0);
  const fileWriteGuid = newGuid();
  const dataWriteGuid = newGuid();
  const header = {
    sequenceNumber: 0n,
    fileWriteGuid,
    dataWriteGuid,
    logGuid: ZERO_GUID,
    logVersion: 0,
    version: 1,
    logLength: o.logSize,
    logOffset,
  };
  serializeHeader({ ...header, sequenceNumber: 1n }).copy(section, HEADER1_OFFSET);
  serializeHeader({ ...header, sequenceNumber: 2n }).copy(section, HEADER2_OFFSET);
  const regions = serializeRegionTable([
    { guid: REGION_BAT, fileOffset: batOffset, length: batLength, required: true },
    { guid: REGION_METADATA, fileOffset: metadataOffset, length: metadataLength, required: true },
  ]);
  regions.copy(section, REGION_TABLE1_OFFSET);
  regions.copy(section, REGION_TABLE2_OFFSET);

  // Metadata region: the table, then the five items packed from 64 KiB.
  const meta = Buffer.alloc(METADATA_TABLE_SIZE + 64);
  const items: MetadataEntry[] = [];
  let at = METADATA_TABLE_SIZE;
  const put = (itemId: string, data: Buffer, isVirtualDisk: boolean) => {
    data.copy(meta, at);
    items.push({ itemId, offset: at, length: data.length, isUser: false, isVirtualDisk, isRequired: true });
    at += data.length;
  };
  put(ITEM_FILE_PARAMETERS, serializeFileParameters({ blockSize: o.blockSize, leaveBlocksAllocated: fixed, hasParent: parent !== undefined }), false);
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(o.size));
  put(ITEM_VIRTUAL_DISK_SIZE, size, true);
  const page83 = Buffer.alloc(16);
  writeGuid(page83, 0, newGuid());
  put(ITEM_PAGE83, page83, true);
  const lss = Buffer.alloc(4);
  lss.writeUInt32LE(o.logicalSectorSize);
  put(ITEM_LOGICAL_SECTOR_SIZE, lss, true);
  const pss = Buffer.alloc(4);
  pss.writeUInt32LE(o.physicalSectorSize);
  put(ITEM_PHYSICAL_SECTOR_SIZE, pss, true);
  // As Hyper-V writes it: required, not a virtual-disk item, after the five others.
  const locator = parent ? serializeParentLocator(parent) : null;
  if (locator && locator.length > MAX_PARENT_LOCATOR) throw usage(`the parent's paths make a ${locator.length}-byte locator, over ${MAX_PARENT_LOCATOR}`);
  serializeMetadataTable(items.concat(locator ? [{ itemId: ITEM_PARENT_LOCATOR, offset: at, length: locator.length, isUser: false, isVirtualDisk: false, isRequired: true }] : [])).copy(meta, 0);
  const metaBytes = locator ? Buffer.concat([meta.subarray(0, at), locator]) : meta;

  // BAT: NOT_PRESENT is all zeros and stays a hole; other states are written out in pieces.
  // A child gets every chunk's sector bitmap block at once, as holes (all bits clear: all from the
  // parent). libvhdi reads bits even where the bitmap entry is NOT_PRESENT (at file offset 0), so a
  // child without them would read wrongly there; they cost no space while empty.
  const bitmapsAt = payloadStart;
  let fileEnd = parent ? payloadStart + g.bitmapBlocks * MiB : payloadStart;
  if (fixed || o.blockStateZero || parent) {
    const CHUNK_ENTRIES = 512 * 1024;
    let block = 0;
    for (let first = 0; first < g.totalEntries; first += CHUNK_ENTRIES) {
      const n = Math.min(CHUNK_ENTRIES, g.totalEntries - first);
      const chunk = Buffer.alloc(n * 8);
      for (let i = 0; i < n; i++) {
        if (isBitmapEntry(g, first + i)) {
          if (parent) encodeBatEntry(chunk, i * 8, SB_PRESENT, bitmapsAt + Math.floor((first + i) / (g.chunkRatio + 1)) * MiB);
          continue;
        }
        if (parent) continue;
        if (fixed) encodeBatEntry(chunk, i * 8, PAYLOAD_FULLY_PRESENT, payloadStart + block * o.blockSize);
        else encodeBatEntry(chunk, i * 8, PAYLOAD_ZERO, 0);
        block++;
      }
      await file.writeAt(chunk, batOffset + first * 8);
    }
    if (fixed) fileEnd = payloadStart + g.dataBlocks * o.blockSize;
  }
  for (const [s, e] of nonZeroRuns(metaBytes)) await file.writeAt(metaBytes.subarray(s, e), metadataOffset + s);
  await file.truncate(fileEnd);
  await file.flush();
  // The header section last: until it is there the file is not a VHDX at all. Only what is not zero
  // is written (the section is mostly padding), the file identifier at offset 0 last of all.
  for (const [s, e] of nonZeroRuns(section).reverse()) await file.writeAt(section.subarray(s, e), s);
  await file.flush();
}
