import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { VdiskError } from '../../errors.js';
import { PositionalFile } from '../../io/file.js';
import type { CreateRequest } from '../driver.js';
import {
  DEFAULT_GRAIN_SECTORS, DESCRIPTOR_SECTORS, FLAG_NL_DETECT, FLAG_REDUNDANT_GT, MAX_GTES_PER_GT, SECTOR,
} from './constants.js';
import { serializeDescriptor } from './descriptor.js';
import { serializeSparseHeader } from './header.js';
import { VmdkImage } from './vmdk-image.js';

export const VMDK_CREATE_OPTIONS: Record<string, string> = {
  subformat: 'monolithicSparse, streamOptimized, monolithicFlat, twoGbMaxExtentSparse or twoGbMaxExtentFlat (default monolithicSparse)',
  adapter_type: 'ide, lsilogic, buslogic or legacyESX (default ide)',
  compat6: 'on: VMDK version 6 (ddb.virtualHWVersion 6); off (default)',
};

export type VmdkSubformat = 'monolithicSparse' | 'streamOptimized' | 'monolithicFlat' | 'twoGbMaxExtentSparse' | 'twoGbMaxExtentFlat';

const SUBFORMATS: readonly string[] = ['monolithicSparse', 'streamOptimized', 'monolithicFlat', 'twoGbMaxExtentSparse', 'twoGbMaxExtentFlat'];

export interface VmdkCreateOptions {
  subformat: VmdkSubformat;
  adapterType: string;
  hwVersion: number;
  capacitySectors: number;
  /** The extent file's name as the descriptor writes it. */
  name: string;
  cid: number;
}

export function vmdkCreateOptions(req: CreateRequest): VmdkCreateOptions {
  const o = req.options;
  const subformat = (o.subformat ?? 'monolithicSparse') as VmdkSubformat;
  if (!SUBFORMATS.includes(subformat)) {
    throw new VdiskError('USAGE', `-o subformat: expected ${SUBFORMATS.slice(0, -1).join(', ')} or ${SUBFORMATS[SUBFORMATS.length - 1]}, not '${subformat}'`);
  }
  const adapterType = o.adapter_type ?? 'ide';
  if (!['ide', 'lsilogic', 'buslogic', 'legacyESX'].includes(adapterType)) {
    throw new VdiskError('USAGE', `-o adapter_type: expected ide, lsilogic, buslogic or legacyESX, not '${adapterType}'`);
  }
  const compat6 = o.compat6 ?? 'off';
  if (!['on', 'off', 'true', 'false', 'yes', 'no'].includes(compat6)) throw new VdiskError('USAGE', `-o compat6: expected on or off, not '${compat6}'`);
  if (!Number.isSafeInteger(req.size) || req.size < 0) throw new VdiskError('USAGE', `size must be a number of bytes, not ${req.size}`);
  // The grain directory of a monolithicSparse disk is held in memory while it is made: bound it.
  if (req.size > 64 * 1024 ** 4) throw new VdiskError('USAGE', `${req.path}: vdisk makes VMDKs of at most 64 TiB`);
  return {
    subformat,
    adapterType,
    hwVersion: ['on', 'true', 'yes'].includes(compat6) ? 6 : 4,
    capacitySectors: Math.ceil(req.size / SECTOR),
    name: basename(req.path),
    cid: randomBytes(4).readUInt32LE(0),
  };
}

/** The parent a new sparse child names, with its content ID. */
export function parentOf(req: CreateRequest): { hint: string; cid: number } | null {
  if (!req.backing) return null;
  if (!(req.backing.image instanceof VmdkImage)) {
    throw new VdiskError('UNSUPPORTED', `${req.path}: a VMDK's parent must be a VMDK (${req.backing.path} is ${req.backing.format})`);
  }
  return { hint: req.backing.path, cid: req.backing.image.descriptor.cid };
}

/** The layout QEMU gives a new monolithicSparse disk, in sectors: both directories and all tables up front. */
export function sparseLayout(capacitySectors: number, grainSectors = DEFAULT_GRAIN_SECTORS) {
  const gtes = MAX_GTES_PER_GT;
  const gtCount = Math.ceil(capacitySectors / (grainSectors * gtes));
  const gdSectors = Math.ceil((gtCount * 4) / SECTOR);
  const gtSectors = (gtes * 4) / SECTOR;
  const rgd = 1 + DESCRIPTOR_SECTORS;
  const gd = rgd + gdSectors + gtCount * gtSectors;
  const end = gd + gdSectors + gtCount * gtSectors;
  const overhead = Math.ceil(end / grainSectors) * grainSectors;
  return { gtes, gtCount, gdSectors, gtSectors, rgd, gd, overhead, grainSectors };
}

/** Writes an empty monolithicSparse disk: header, descriptor, both directories, zeroed tables. */
export async function writeMonolithicSparse(file: PositionalFile, o: VmdkCreateOptions, req: CreateRequest): Promise<void> {
  const text = sparseDescriptor(o, 'monolithicSparse', parentOf(req));
  await writeEmptySparse(file, o.capacitySectors, descriptorSectors(req.path, text, DESCRIPTOR_SECTORS));
}

/**
 * Writes an empty sparse extent as QEMU lays one out: header, a descriptor area of DESCRIPTOR_SECTORS
 * (`descriptor`; all zeros in the pieces of a split disk, whose descriptor is a file of its own),
 * the redundant and the primary directory, each followed by its zeroed tables.
 */
export async function writeEmptySparse(file: PositionalFile, capacitySectors: number, descriptor: Buffer): Promise<void> {
  const L = sparseLayout(capacitySectors);
  const header = serializeSparseHeader({
    version: 1,
    flags: FLAG_NL_DETECT | FLAG_REDUNDANT_GT,
    capacity: BigInt(capacitySectors),
    grainSize: BigInt(L.grainSectors),
    descriptorOffset: 1n,
    descriptorSize: BigInt(DESCRIPTOR_SECTORS),
    numGTEsPerGT: L.gtes,
    rgdOffset: BigInt(L.rgd),
    gdOffset: BigInt(L.gd),
    overHead: BigInt(L.overhead),
    uncleanShutdown: 0,
    compressAlgorithm: 0,
  });
  await file.truncate(L.overhead * SECTOR);
  await file.writeAt(header, 0);
  if (descriptor.some((b) => b !== 0)) await file.writeAt(descriptor, SECTOR);
  for (const [dirSector] of [[L.rgd], [L.gd]]) {
    const dir = Buffer.alloc(L.gdSectors * SECTOR);
    for (let i = 0; i < L.gtCount; i++) dir.writeUInt32LE(dirSector + L.gdSectors + i * L.gtSectors, i * 4);
    await file.writeAt(dir, dirSector * SECTOR);
  }
  await file.flush();
}

/** The descriptor of a disk that is one sparse extent, the file itself. */
export function sparseDescriptor(o: VmdkCreateOptions, createType: string, parent: { hint: string; cid: number } | null): string {
  return serializeDescriptor({
    cid: o.cid,
    createType,
    extents: [{ access: 'RW', sectors: o.capacitySectors, type: 'SPARSE', file: o.name, offset: 0 }],
    capacitySectors: o.capacitySectors,
    adapterType: o.adapterType,
    hwVersion: o.hwVersion,
    ...(parent ? { parentCid: parent.cid, parentFileNameHint: parent.hint } : {}),
  });
}

/** The descriptor text in a zero-padded area of `sectors` sectors, refused when it does not fit. */
export function descriptorSectors(path: string, text: string, sectors: number): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > sectors * SECTOR) throw new VdiskError('USAGE', `${path}: the descriptor (${bytes.length} bytes) does not fit in ${sectors} sectors (a shorter parent path?)`);
  const out = Buffer.alloc(sectors * SECTOR);
  bytes.copy(out);
  return out;
}

/** The flat extent's path beside the descriptor: "disk.vmdk" -> "disk-flat.vmdk". */
export function flatExtentPath(path: string): string {
  const name = basename(path).replace(/\.vmdk$/i, '');
  return join(dirname(path), `${name}-flat.vmdk`);
}
