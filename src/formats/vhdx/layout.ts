import { readExact, type ByteSource } from '../../io/file.js';
import { VdiskError, corrupt, unsupported } from '../../errors.js';
import {
  HEADER1_OFFSET, HEADER2_OFFSET, HEADER_SECTION_SIZE, HEADER_SIZE, ITEM_FILE_PARAMETERS, ITEM_LOGICAL_SECTOR_SIZE,
  ITEM_PAGE83, ITEM_PARENT_LOCATOR, ITEM_PHYSICAL_SECTOR_SIZE, ITEM_VIRTUAL_DISK_SIZE, MAX_BLOCK_SIZE,
  MAX_METADATA_ITEM, MAX_VIRTUAL_SIZE, METADATA_TABLE_SIZE, MIN_BLOCK_SIZE, MiB, REGION_BAT, REGION_METADATA, REGION_TABLE1_OFFSET,
  REGION_TABLE2_OFFSET, REGION_TABLE_SIZE, GiB, isPowerOfTwo,
} from './constants.js';
import { parseFileIdentifier } from './file-identifier.js';
import { parseHeader, type VhdxHeader } from './header.js';
import { parseRegionTable, type RegionEntry } from './region-table.js';
import {
  parseFileParameters, parseMetadataTable, parseParentLocator, type FileParameters, type MetadataEntry,
  type ParentLocator,
} from './metadata.js';
import { batGeometry, type BatGeometry } from './bat.js';
import { ZERO_GUID, readGuid } from './guid.js';

const ITEM_NAMES: Record<string, string> = {
  [ITEM_FILE_PARAMETERS]: 'file parameters',
  [ITEM_VIRTUAL_DISK_SIZE]: 'virtual disk size',
  [ITEM_PAGE83]: 'virtual disk id',
  [ITEM_LOGICAL_SECTOR_SIZE]: 'logical sector size',
  [ITEM_PHYSICAL_SECTOR_SIZE]: 'physical sector size',
  [ITEM_PARENT_LOCATOR]: 'parent locator',
};

/** Everything the header section and metadata say about an image, validated. */
export interface VhdxLayout {
  creator: string;
  headers: [VhdxHeader | null, VhdxHeader | null];
  headerProblems: [string | null, string | null];
  current: 0 | 1;
  header: VhdxHeader;
  regionTableUsed: 0 | 1;
  regionTableProblems: [string | null, string | null];
  regions: RegionEntry[];
  bat: RegionEntry;
  metadata: RegionEntry;
  metadataEntries: MetadataEntry[];
  params: FileParameters;
  virtualSize: number;
  virtualDiskId: string;
  logicalSectorSize: number;
  physicalSectorSize: number;
  parentLocator: ParentLocator | null;
  geometry: BatGeometry;
  warnings: string[];
}

export interface HeaderChoice {
  headers: [VhdxHeader | null, VhdxHeader | null];
  problems: [string | null, string | null];
  current: 0 | 1;
  header: VhdxHeader;
}

/** Reads both header slots and picks the current one: valid, with the larger sequence number. */
export async function readHeaders(src: ByteSource): Promise<HeaderChoice> {
  const file = src.path;
  if (src.size() < HEADER_SECTION_SIZE) {
    throw new VdiskError('TRUNCATED', `${file}: file is ${src.size()} bytes, shorter than the 1 MiB VHDX header section`);
  }
  const slots = await Promise.all(
    [HEADER1_OFFSET, HEADER2_OFFSET].map(async (o) => parseHeader(await readExact(src, o, HEADER_SIZE, 'header'))),
  );
  const headers: [VhdxHeader | null, VhdxHeader | null] = [
    slots[0].ok ? slots[0].header : null,
    slots[1].ok ? slots[1].header : null,
  ];
  const problems: [string | null, string | null] = [
    slots[0].ok ? null : slots[0].reason,
    slots[1].ok ? null : slots[1].reason,
  ];
  if (!headers[0] && !headers[1]) {
    throw corrupt(file, `no valid VHDX header (header 1: ${problems[0]}; header 2: ${problems[1]})`);
  }
  let current: 0 | 1;
  if (headers[0] && headers[1]) current = headers[1].sequenceNumber > headers[0].sequenceNumber ? 1 : 0;
  else current = headers[0] ? 0 : 1;
  return { headers, problems, current, header: headers[current] as VhdxHeader };
}

/** Checks the log fields of the current header against the file. */
export function validateLogFields(file: string, h: VhdxHeader, fileSize: number): void {
  if (h.logVersion !== 0) throw unsupported(file, `header log version ${h.logVersion} (only 0 is defined)`);
  if (h.logLength % MiB !== 0) throw corrupt(file, `header log length ${h.logLength} is not a multiple of 1 MiB`);
  if (h.logLength === 0) {
    if (h.logGuid !== ZERO_GUID) throw corrupt(file, 'header names a log GUID but the log length is 0');
    return;
  }
  if (h.logOffset < HEADER_SECTION_SIZE || h.logOffset % MiB !== 0) {
    throw corrupt(file, `header log offset ${h.logOffset} is not 1 MiB aligned past the header section`);
  }
  if (h.logOffset + h.logLength > fileSize) {
    throw new VdiskError(
      'TRUNCATED',
      `${file}: log (offset ${h.logOffset}, ${h.logLength} bytes) extends past the end of the file (${fileSize} bytes)`,
    );
  }
}

/** Region, metadata and BAT checks, on a source that already shows the replayed log if there was one. */
export async function readLayout(src: ByteSource, choice: HeaderChoice): Promise<VhdxLayout> {
  const file = src.path;
  const warnings: string[] = [];
  const ident = parseFileIdentifier(await readExact(src, 0, 8 + 512, 'file identifier'));
  if (!ident) throw corrupt(file, 'no vhdxfile signature');
  const h = choice.header;
  if (!choice.headers[0] || !choice.headers[1]) {
    const bad = choice.headers[0] ? 2 : 1;
    warnings.push(`header ${bad} is damaged (${choice.problems[bad - 1]}); using header ${choice.current + 1}`);
  }

  // Region tables: the first good copy wins; the second stands in when the first is damaged.
  const tables = await Promise.all(
    [REGION_TABLE1_OFFSET, REGION_TABLE2_OFFSET].map(async (o) =>
      parseRegionTable(await readExact(src, o, REGION_TABLE_SIZE, 'region table')),
    ),
  );
  const problems: [string | null, string | null] = [
    tables[0].ok ? null : tables[0].reason,
    tables[1].ok ? null : tables[1].reason,
  ];
  const used: 0 | 1 = tables[0].ok ? 0 : 1;
  const table = tables[used];
  if (!table.ok) throw corrupt(file, `no valid region table (table 1: ${problems[0]}; table 2: ${problems[1]})`);
  if (used === 1) warnings.push(`region table 1 is damaged (${problems[0]}); using region table 2`);

  const occupied: { start: number; end: number; what: string }[] = [
    { start: 0, end: HEADER_SECTION_SIZE, what: 'header section' },
  ];
  if (h.logLength > 0) occupied.push({ start: h.logOffset, end: h.logOffset + h.logLength, what: 'log' });
  let bat: RegionEntry | undefined;
  let metadata: RegionEntry | undefined;
  for (const r of table.entries) {
    const name = r.guid === REGION_BAT ? 'BAT region' : r.guid === REGION_METADATA ? 'metadata region' : `region ${r.guid}`;
    if (r.guid === REGION_BAT || r.guid === REGION_METADATA) {
      if ((r.guid === REGION_BAT ? bat : metadata) !== undefined) throw corrupt(file, `region table lists the ${name} twice`);
      if (r.guid === REGION_BAT) bat = r;
      else metadata = r;
    } else if (r.required) {
      throw unsupported(file, `region table has an unknown required region ${r.guid}; refusing to open`);
    } else {
      warnings.push(`unknown optional region ${r.guid} ignored`);
    }
    if (r.fileOffset < HEADER_SECTION_SIZE || r.fileOffset % MiB !== 0 || r.length === 0 || r.length % MiB !== 0) {
      throw corrupt(file, `${name} (offset ${r.fileOffset}, length ${r.length}) is not 1 MiB aligned past the header section`);
    }
    if (r.fileOffset + r.length > src.size()) {
      throw new VdiskError(
        'TRUNCATED',
        `${file}: ${name} (offset ${r.fileOffset}, ${r.length} bytes) extends past the end of the file (${src.size()} bytes)`,
      );
    }
    for (const o of occupied) {
      if (r.fileOffset < o.end && o.start < r.fileOffset + r.length) throw corrupt(file, `${name} overlaps the ${o.what}`);
    }
    occupied.push({ start: r.fileOffset, end: r.fileOffset + r.length, what: name });
  }
  if (!bat) throw corrupt(file, 'region table has no BAT region');
  if (!metadata) throw corrupt(file, 'region table has no metadata region');

  // Metadata table and items.
  const mt = parseMetadataTable(await readExact(src, metadata.fileOffset, METADATA_TABLE_SIZE, 'metadata table'));
  if (!mt.ok) throw corrupt(file, `metadata table at offset ${metadata.fileOffset}: ${mt.reason}`);
  const known = new Set([
    ITEM_FILE_PARAMETERS, ITEM_VIRTUAL_DISK_SIZE, ITEM_PAGE83, ITEM_LOGICAL_SECTOR_SIZE, ITEM_PHYSICAL_SECTOR_SIZE,
    ITEM_PARENT_LOCATOR,
  ]);
  const items = new Map<string, MetadataEntry>();
  for (const e of mt.entries) {
    if (!known.has(e.itemId)) {
      if (e.isRequired) throw unsupported(file, `metadata has an unknown required item ${e.itemId}; refusing to open`);
      continue;
    }
    if (items.has(e.itemId)) throw corrupt(file, `metadata item ${e.itemId} appears twice`);
    if (e.length > MAX_METADATA_ITEM) {
      throw corrupt(file, `metadata ${ITEM_NAMES[e.itemId]} item is ${e.length} bytes, over the format's limit of ${MAX_METADATA_ITEM} (MS-VHDX 2.6.1.2)`);
    }
    if (e.length > 0 && (e.offset < METADATA_TABLE_SIZE || e.offset + e.length > metadata.length)) {
      throw corrupt(file, `metadata item ${e.itemId} (offset ${e.offset}, length ${e.length}) lies outside the metadata region`);
    }
    items.set(e.itemId, e);
  }
  const item = async (id: string, name: string, min: number): Promise<Buffer> => {
    const e = items.get(id);
    if (!e) throw corrupt(file, `metadata has no ${name} item`);
    if (e.length < min) throw corrupt(file, `metadata ${name} item is ${e.length} bytes, needs ${min}`);
    return readExact(src, metadata.fileOffset + e.offset, Math.min(e.length, 64 * 1024), `metadata ${name} item`);
  };
  const params = parseFileParameters(await item(ITEM_FILE_PARAMETERS, 'file parameters', 8));
  const virtualSize = Number((await item(ITEM_VIRTUAL_DISK_SIZE, 'virtual disk size', 8)).readBigUInt64LE(0));
  const virtualDiskId = readGuid(await item(ITEM_PAGE83, 'virtual disk id', 16), 0);
  const logicalSectorSize = (await item(ITEM_LOGICAL_SECTOR_SIZE, 'logical sector size', 4)).readUInt32LE(0);
  const physicalSectorSize = (await item(ITEM_PHYSICAL_SECTOR_SIZE, 'physical sector size', 4)).readUInt32LE(0);

  if (!isPowerOfTwo(params.blockSize) || params.blockSize < MIN_BLOCK_SIZE || params.blockSize > MAX_BLOCK_SIZE) {
    throw corrupt(file, `block size ${params.blockSize} is not a power of two from 1 MiB to 256 MiB`);
  }
  if (logicalSectorSize !== 512 && logicalSectorSize !== 4096) {
    throw corrupt(file, `logical sector size ${logicalSectorSize} is not 512 or 4096`);
  }
  if (physicalSectorSize !== 512 && physicalSectorSize !== 4096) {
    throw corrupt(file, `physical sector size ${physicalSectorSize} is not 512 or 4096`);
  }
  if (virtualSize > MAX_VIRTUAL_SIZE || virtualSize % logicalSectorSize !== 0) {
    throw corrupt(file, `virtual disk size ${virtualSize} is over 64 TiB or not a multiple of the ${logicalSectorSize}-byte sector`);
  }
  let parentLocator: ParentLocator | null = null;
  if (params.hasParent) {
    const e = items.get(ITEM_PARENT_LOCATOR);
    if (!e) throw corrupt(file, 'file parameters say the image has a parent, but metadata has no parent locator');
    const pl = parseParentLocator(await readExact(src, metadata.fileOffset + e.offset, e.length, 'parent locator'));
    if (!pl.ok) throw corrupt(file, `parent locator: ${pl.reason}`);
    parentLocator = pl.locator;
  }

  const geometry = batGeometry(params.blockSize, logicalSectorSize, virtualSize, params.hasParent);
  if (geometry.totalEntries * 8 > bat.length) {
    throw corrupt(file, `BAT region holds ${bat.length / 8} entries but the disk needs ${geometry.totalEntries}`);
  }

  return {
    creator: ident.creator,
    headers: choice.headers,
    headerProblems: choice.problems,
    current: choice.current,
    header: h,
    regionTableUsed: used,
    regionTableProblems: problems,
    regions: table.entries,
    bat,
    metadata,
    metadataEntries: mt.entries,
    params,
    virtualSize,
    virtualDiskId,
    logicalSectorSize,
    physicalSectorSize,
    parentLocator,
    geometry,
    warnings,
  };
}

/**
 * The largest file this image can need: everything the header section, log and regions occupy (or
 * the file as it is, leaks included), plus every payload and sector-bitmap block allocated anew. A
 * log entry reaching further describes no change this image could make (MS-VHDX 2.3.1: the log only
 * carries metadata updates and the file's growth to hold new blocks).
 */
export function largestFileNeeded(layout: VhdxLayout, fileSize: number): number {
  const h = layout.header;
  let end = Math.max(fileSize, HEADER_SECTION_SIZE, h.logOffset + h.logLength);
  for (const r of layout.regions) end = Math.max(end, r.fileOffset + r.length);
  const g = layout.geometry;
  return end + g.dataBlocks * g.blockSize + (g.hasParent ? g.bitmapBlocks * MiB : 0);
}

/**
 * What `largestFileNeeded` says before a pending log is replayed, from the structures as they are
 * on disk; when those cannot be read (the log may be what repairs them), the largest file any VHDX
 * can need: 64 TiB of payload, its sector bitmaps, a 4 GiB log and the largest BAT and metadata.
 */
export async function replayFileLimit(src: ByteSource, choice: HeaderChoice): Promise<number> {
  try {
    return largestFileNeeded(await readLayout(src, choice), src.size());
  } catch (err) {
    if (!(err instanceof VdiskError)) throw err;
    return Math.max(src.size(), MAX_VIRTUAL_SIZE + 16 * GiB);
  }
}
