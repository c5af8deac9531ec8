import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { VdiskError } from '../../errors.js';
import type { PositionalFile } from '../../io/file.js';
import { parseSize } from '../../util/size.js';
import type { CreateRequest, CreateResult } from '../driver.js';
import type { DiskImage } from '../image.js';
import { exportImage } from '../export-stream.js';
import {
  DEFAULT_BLOCK_SIZE, DISK_DIFFERENCING, DISK_DYNAMIC, DISK_FIXED, FOOTER_SIZE, HEADER_SIZE, KiB, MAX_SIZE, MiB,
  SECTOR, VHD_EPOCH, bitmapSizeOf, roundUp,
} from './constants.js';
import { serializeFooter, vhdNow, type Footer } from './footer.js';
import { serializeDynamicHeader } from './dynamic-header.js';
import { azureSize, calculateGeometry, chsSectors, newDiskSize, type Chs } from './geometry.js';
import { newLocators, placeLocators } from './locator.js';
import { ZERO_UUID, newUuid } from './uuid.js';
import { VpcImage } from './vpc-image.js';

export const VPC_CREATE_OPTIONS: Record<string, string> = {
  subformat: 'dynamic or fixed (default dynamic)',
  block_size: 'block size of a dynamic VHD: 512K, 1M or 2M (default 2M)',
  force_size: 'on: the exact size asked for; off: rounded up to a CHS geometry, as Virtual PC reads it (default off)',
  azure: 'on: a fixed VHD whose size is rounded up to a whole MiB, as Azure requires (default off)',
};

export interface VpcCreateOptions {
  subformat: 'dynamic' | 'fixed';
  blockSize: number;
  forceSize: boolean;
  azure: boolean;
}

function onOff(key: string, v: string): boolean {
  if (v === 'on' || v === 'true' || v === 'yes') return true;
  if (v === 'off' || v === 'false' || v === 'no') return false;
  throw new VdiskError('USAGE', `-o ${key}: expected on or off, not '${v}'`);
}

/** `-o` pairs as VHD creation options, checked (keys already checked against VPC_CREATE_OPTIONS). */
export function parseVpcOptions(options: Readonly<Record<string, string>>): VpcCreateOptions {
  const o: VpcCreateOptions = { subformat: 'dynamic', blockSize: DEFAULT_BLOCK_SIZE, forceSize: false, azure: false };
  let subformatGiven = false;
  for (const [key, value] of Object.entries(options)) {
    if (key === 'subformat') {
      if (value !== 'dynamic' && value !== 'fixed') throw new VdiskError('USAGE', `-o subformat: expected dynamic or fixed, not '${value}'`);
      o.subformat = value;
      subformatGiven = true;
    } else if (key === 'block_size') {
      o.blockSize = parseSize(value, '-o block_size');
      if (![512 * KiB, MiB, 2 * MiB].includes(o.blockSize)) throw new VdiskError('USAGE', `-o block_size: VHD blocks are 512K, 1M or 2M, not ${value}`);
    } else if (key === 'force_size') o.forceSize = onOff(key, value);
    else if (key === 'azure') o.azure = onOff(key, value);
  }
  if (o.azure) {
    if (subformatGiven && o.subformat !== 'fixed') throw new VdiskError('USAGE', '-o azure=on makes a fixed VHD (Azure takes no other); drop subformat=dynamic');
    o.subformat = 'fixed';
    o.forceSize = true;
  }
  return o;
}

/** The virtual size and geometry a new VHD of `size` bytes gets with these options. */
export function plannedSize(size: number, o: VpcCreateOptions): { size: number; chs: Chs } {
  const planned = newDiskSize(o.azure ? azureSize(size) : size, o.forceSize);
  if (planned.size > MAX_SIZE) throw new VdiskError('USAGE', `${size} bytes is too large for a VHD (at most 2040 GiB)`);
  return planned;
}

function newFooter(type: number, size: number, chs: Chs, dataOffset: number): Footer {
  return {
    features: 2,
    version: 0x00010000,
    dataOffset,
    timestamp: vhdNow(),
    creatorApp: 'vdsk',
    creatorVersion: 0x00010000,
    creatorHostOs: 'Wi2k',
    originalSize: size,
    currentSize: size,
    chs,
    diskType: type,
    checksum: 0,
    uuid: newUuid(),
    savedState: false,
  };
}

/** File bytes of the metadata of a dynamic VHD with `entries` BAT entries (footer copy, header, BAT). */
export function dynamicMetadataBytes(entries: number): number {
  return FOOTER_SIZE + HEADER_SIZE + roundUp(entries * 4, SECTOR);
}

/** Writes a new VHD into the empty `file`: fixed, dynamic, or differencing on `req.backing`. */
export async function writeNewVpc(file: PositionalFile, req: CreateRequest): Promise<CreateResult> {
  const o = parseVpcOptions(req.options);
  if (req.backing) {
    if (o.subformat === 'fixed' || o.azure) throw new VdiskError('USAGE', `${req.path}: a VHD with a parent is a differencing one: subformat=fixed and azure=on do not apply`);
    await writeDifferencing(file, req, o);
    return {};
  }
  const { size, chs } = plannedSize(req.size, o);
  if (o.subformat === 'fixed') {
    // Sparse: the data area is a hole until written.
    await file.truncate(size);
    await writeFixedFooter(file, size, chs);
  } else {
    await writeDynamic(file, newFooter(DISK_DYNAMIC, size, chs, FOOTER_SIZE), o.blockSize, null);
  }
  return sizeResult(req.size, size, chs, o);
}

/** Tells the user when the virtual size is not the one asked for, and why. */
function sizeResult(asked: number, size: number, chs: Chs, o: VpcCreateOptions): CreateResult {
  if (size === asked) return {};
  const why = o.azure
    ? 'azure=on rounds the virtual size up to a whole MiB, as Azure requires'
    : `the size is rounded to the CHS geometry ${chs.cylinders}/${chs.heads}/${chs.sectors}, as qemu-img and Virtual PC do (force_size=on keeps the exact size)`;
  return { size, notes: [`virtual size ${size} bytes, not ${asked}: ${why}`] };
}

async function writeFixedFooter(file: PositionalFile, size: number, chs: Chs): Promise<void> {
  await file.writeAt(serializeFooter(newFooter(DISK_FIXED, size, chs, -1)), size);
  await file.flush();
}

/**
 * convert -O vpc to a fixed VHD: the data area is a raw disk at offset 0, so the source is exported
 * straight into it (sparse, several reads in flight) and the footer written after it. Other VHDs go
 * the generic way (create, open, write).
 */
export async function convertToFixed(source: DiskImage, file: PositionalFile, req: CreateRequest, onProgress?: (done: number, total: number) => void): Promise<boolean | CreateResult> {
  const o = parseVpcOptions(req.options);
  if (o.subformat !== 'fixed' || req.backing) return false;
  const { size, chs } = plannedSize(req.size, o);
  await exportImage(source, { kind: 'open', file, holes: true }, { length: Math.min(size, source.virtualSize), onProgress });
  await file.truncate(size);
  await writeFixedFooter(file, size, chs);
  return sizeResult(req.size, size, chs, o);
}

interface ParentPart {
  uuid: string;
  timestamp: number;
  name: string;
  locators: { code: string; data: Buffer }[];
}

async function writeDynamic(file: PositionalFile, footer: Footer, blockSize: number, parent: ParentPart | null): Promise<void> {
  const entries = Math.ceil(footer.currentSize / blockSize);
  const batOffset = FOOTER_SIZE + HEADER_SIZE;
  const batBytes = roundUp(entries * 4, SECTOR);
  const placed = placeLocators(parent?.locators ?? [], batOffset + batBytes);
  const header = serializeDynamicHeader({
    tableOffset: batOffset,
    version: 0x00010000,
    maxTableEntries: entries,
    blockSize,
    parentUuid: parent?.uuid ?? ZERO_UUID,
    parentTimestamp: parent?.timestamp ?? 0,
    parentName: parent?.name ?? '',
    locators: placed.entries,
  });
  const foot = serializeFooter(footer);
  await file.writeAt(foot, 0);
  await file.writeAt(header, FOOTER_SIZE);
  const chunk = Buffer.alloc(Math.min(batBytes, MiB), 0xff);
  for (let at = 0; at < batBytes; at += chunk.length) await file.writeAt(chunk.subarray(0, Math.min(chunk.length, batBytes - at)), batOffset + at);
  for (const [i, l] of (parent?.locators ?? []).entries()) await file.writeAt(l.data, placed.entries[i].dataOffset);
  // The locators' last sector is padded with zeros, and the footer follows.
  if (placed.end > file.size()) await file.truncate(placed.end);
  await file.writeAt(foot, placed.end);
  await file.flush();
}

async function writeDifferencing(file: PositionalFile, req: CreateRequest, o: VpcCreateOptions): Promise<void> {
  const backing = req.backing!;
  const parent = backing.image;
  let size: number;
  let chs: Chs;
  let uuid = ZERO_UUID;
  if (parent instanceof VpcImage) {
    // The child is the parent's disk: same size, same geometry.
    size = parent.virtualSize;
    chs = parent.layout.footer.chs;
    uuid = parent.layout.footer.uuid;
  } else {
    size = roundUp(parent.virtualSize, SECTOR);
    const g = calculateGeometry(size / SECTOR);
    chs = chsSectors(g) === size / SECTOR ? g : newDiskSize(size, true).chs;
  }
  if (req.size !== parent.virtualSize && req.size !== size) {
    throw new VdiskError('USAGE', `${req.path}: a differencing VHD has its parent's size (${parent.virtualSize} bytes), not ${req.size}`);
  }
  if (size > MAX_SIZE) throw new VdiskError('USAGE', `${backing.path}: too large for a VHD parent (at most 2040 GiB)`);
  const mtime = Math.max(0, Math.floor((await stat(backing.path)).mtimeMs / 1000) - VHD_EPOCH);
  const footer = newFooter(DISK_DIFFERENCING, size, chs, FOOTER_SIZE);
  await writeDynamic(file, footer, o.blockSize, {
    uuid,
    timestamp: mtime,
    name: basename(backing.path),
    locators: newLocators(req.path, backing.path),
  });
}

/** qemu-img measure for VHD: the file a new image needs with `allocated` bytes of data, and with all. */
export function measureVpc(req: CreateRequest, allocated: number): { required: number; fullyAllocated: number } {
  const o = parseVpcOptions(req.options);
  const { size } = plannedSize(req.size, o);
  if (o.subformat === 'fixed') return { required: size + FOOTER_SIZE, fullyAllocated: size + FOOTER_SIZE };
  const entries = Math.ceil(size / o.blockSize);
  const base = dynamicMetadataBytes(entries) + FOOTER_SIZE;
  const perBlock = bitmapSizeOf(o.blockSize) + o.blockSize;
  const blocks = Math.min(entries, Math.ceil(allocated / o.blockSize));
  return { required: base + blocks * perBlock, fullyAllocated: base + entries * perBlock };
}
