import { VdiskError } from '../../errors.js';
import { parseSize } from '../../util/size.js';
import type { CreateRequest, FormatDriver } from '../driver.js';
import type { DiskImage } from '../image.js';
import { VhdxImage } from './vhdx-image.js';
import { hasVhdxSignature } from './file-identifier.js';
import { resolveCreateOptions, writeNewVhdx, type VhdxCreateOptions } from './create.js';
import { HEADER_SECTION_SIZE, MiB, roundUp } from './constants.js';
import { batGeometry } from './bat.js';
import { checkVhdx } from './check.js';
import { newParentLocator } from './parent.js';

export const VHDX_CREATE_OPTIONS: Record<string, string> = {
  subformat: 'dynamic or fixed (default dynamic)',
  block_size: 'payload block size, a power of two from 1M to 256M (default by size, as QEMU chooses)',
  log_size: 'log size, a multiple of 1M (default 1M)',
  logical_sector_size: '512 or 4096 (default 512)',
  physical_sector_size: '512 or 4096 (default 512, or 4096 with 4096-byte logical sectors)',
  block_state_zero: 'on: unallocated blocks are marked ZERO; off: NOT_PRESENT (default off)',
};

export const vhdxDriver: FormatDriver = {
  name: 'vhdx',
  description: "Microsoft's VHDX (Hyper-V): dynamic, fixed and differencing, with its log",
  extensions: ['.vhdx', '.avhdx'],
  probe: (p) => (hasVhdxSignature(p.head) ? 100 : 0),
  async open(file, ctx) {
    if (!hasVhdxSignature(await signature(file))) {
      throw new VdiskError('CORRUPT', `${file.path}: not a VHDX image (no vhdxfile signature)`);
    }
    const image = await VhdxImage.fromFile(file);
    image.forceShare = ctx.forceShare;
    image.openBacking = (path) => ctx.openBacking(path, 'vhdx');
    return image;
  },
  createOptions: VHDX_CREATE_OPTIONS,
  async create(file, req) {
    if (!req.backing) return writeNewVhdx(file, vhdxCreateOptions(req));
    const parent = req.backing.image;
    if (!(parent instanceof VhdxImage)) {
      throw new VdiskError('UNSUPPORTED', `${req.backing.path}: a differencing VHDX needs a VHDX parent, not ${req.backing.format}`);
    }
    if (req.size !== parent.virtualSize) {
      throw new VdiskError('USAGE', `${req.path}: a differencing image has its parent's size (${parent.virtualSize} bytes), not ${req.size}`);
    }
    // Sector sizes must be the parent's (the bitmaps count its sectors); the block size may differ
    // but the parent's makes commit a copy of whole blocks.
    const o = parseVhdxOptions(req.options);
    for (const key of ['logical_sector_size', 'physical_sector_size'] as const) {
      if (req.options[key] !== undefined) throw new VdiskError('USAGE', `-o ${key}: a differencing image has its parent's sector sizes`);
    }
    const options = resolveCreateOptions({
      ...o,
      size: req.size,
      creator: req.creator,
      blockSize: o.blockSize ?? parent.blockSize,
      logicalSectorSize: parent.logicalSectorSize,
      physicalSectorSize: parent.layout.physicalSectorSize,
    });
    await writeNewVhdx(file, options, newParentLocator(req.path, req.backing.path, parent.layout.header.dataWriteGuid));
  },
  measure: measureVhdx,
  measureGranularity: (req) => vhdxCreateOptions(req).blockSize,
  check: (file, options) => checkVhdx(file, options),
};

/**
 * `measure` as writeNewVhdx lays a new image out: header section, log, BAT and metadata region, each
 * on a MiB, then one block per block of data (every block for a fixed image).
 */
function measureVhdx(req: CreateRequest, allocatedBytes: number): { required: number; fullyAllocated: number } {
  const o = vhdxCreateOptions(req);
  const g = batGeometry(o.blockSize, o.logicalSectorSize, o.size, false);
  const payloadStart = roundUp(HEADER_SECTION_SIZE + o.logSize, MiB) + roundUp(Math.max(g.totalEntries * 8, 1), MiB) + MiB;
  const fullyAllocated = payloadStart + g.dataBlocks * o.blockSize;
  const blocks = Math.min(g.dataBlocks, Math.ceil(allocatedBytes / o.blockSize));
  return { required: o.subformat === 'fixed' ? fullyAllocated : payloadStart + blocks * o.blockSize, fullyAllocated };
}

async function signature(file: { readAt(b: Uint8Array, p: number): Promise<number> }): Promise<Buffer> {
  const b = Buffer.alloc(8);
  await file.readAt(b, 0);
  return b;
}

function onOff(key: string, v: string): boolean {
  if (v === 'on' || v === 'true' || v === 'yes') return true;
  if (v === 'off' || v === 'false' || v === 'no') return false;
  throw new VdiskError('USAGE', `-o ${key}: expected on or off, not '${v}'`);
}

/** `-o` pairs as VHDX creation options (keys already checked against VHDX_CREATE_OPTIONS). */
export function parseVhdxOptions(options: Readonly<Record<string, string>>): Omit<VhdxCreateOptions, 'size'> {
  const o: Omit<VhdxCreateOptions, 'size'> = {};
  for (const [key, value] of Object.entries(options)) {
    switch (key) {
      case 'subformat':
        if (value !== 'dynamic' && value !== 'fixed') throw new VdiskError('USAGE', `-o subformat: expected dynamic or fixed, not '${value}'`);
        o.subformat = value;
        break;
      case 'block_size':
        o.blockSize = parseSize(value, '-o block_size');
        break;
      case 'log_size':
        o.logSize = parseSize(value, '-o log_size');
        break;
      case 'logical_sector_size':
        o.logicalSectorSize = parseSize(value, '-o logical_sector_size');
        break;
      case 'physical_sector_size':
        o.physicalSectorSize = parseSize(value, '-o physical_sector_size');
        break;
      case 'block_state_zero':
        o.blockStateZero = onOff(key, value);
        break;
    }
  }
  return o;
}

/**
 * The new VHDX's options, checked: from -o, with sector sizes inherited from a VHDX being converted.
 */
export function vhdxCreateOptions(req: CreateRequest): Required<VhdxCreateOptions> {
  const requested = { ...parseVhdxOptions(req.options), creator: req.creator };
  const options = { ...(req.source ? inheritedSectors(req.source, requested) : {}), ...requested };
  // A converted disk of another length is rounded up, as qemu-img does; create refuses such a size.
  const size = req.source ? roundUp(req.size, options.logicalSectorSize ?? 512) : req.size;
  if (size === 0) throw new VdiskError('USAGE', `${req.source?.filename ?? req.path}: the disk is empty (0 bytes); vdisk makes no VHDX without a sector`);
  return resolveCreateOptions({ ...options, size });
}

/**
 * A VHDX source's sector sizes carry over unless -o names them: a disk whose partition table counts
 * 4 KiB sectors would otherwise come out with 512-byte ones and its partitions in the wrong places.
 */
function inheritedSectors(source: DiskImage, vhdx: Omit<VhdxCreateOptions, 'size'>): Omit<VhdxCreateOptions, 'size'> {
  if (!(source instanceof VhdxImage)) return source.logicalSectorSize === 4096 && vhdx.logicalSectorSize === undefined ? { logicalSectorSize: 4096 } : {};
  const out: Omit<VhdxCreateOptions, 'size'> = {};
  if (vhdx.logicalSectorSize === undefined) out.logicalSectorSize = source.logicalSectorSize;
  // A physical size goes with the logical one it was chosen for: with a new logical size, create's default.
  if (vhdx.physicalSectorSize === undefined && vhdx.logicalSectorSize === undefined) out.physicalSectorSize = source.layout.physicalSectorSize;
  return out;
}
