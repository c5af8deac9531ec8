import { CHS_MAX_C, CHS_MAX_H, CHS_MAX_S, MAX_GEOMETRY, MiB, SECTOR } from './constants.js';

export interface Chs {
  cylinders: number;
  heads: number;
  sectors: number;
}

export const MAX_CHS: Chs = { cylinders: CHS_MAX_C, heads: CHS_MAX_H, sectors: CHS_MAX_S };

export function chsSectors(g: Chs): number {
  return g.cylinders * g.heads * g.sectors;
}

/**
 * The CHS geometry of a disk of `totalSectors` sectors, by the algorithm of the VHD specification's
 * appendix as QEMU's calculate_geometry() implements it (the product may fall short of the size).
 */
export function calculateGeometry(totalSectors: number): Chs {
  const total = Math.min(totalSectors, MAX_GEOMETRY);
  let sectors: number;
  let heads: number;
  let cylTimesHeads: number;
  if (total >= 65535 * 16 * 63) {
    sectors = 255;
    heads = 16;
    cylTimesHeads = Math.floor(total / sectors);
  } else {
    sectors = 17;
    cylTimesHeads = Math.floor(total / sectors);
    heads = Math.max(4, Math.ceil(cylTimesHeads / 1024));
    if (cylTimesHeads >= heads * 1024 || heads > 16) {
      sectors = 31;
      heads = 16;
      cylTimesHeads = Math.floor(total / sectors);
    }
    if (cylTimesHeads >= heads * 1024) {
      sectors = 63;
      heads = 16;
      cylTimesHeads = Math.floor(total / sectors);
    }
  }
  return { cylinders: Math.floor(cylTimesHeads / heads), heads, sectors };
}

/**
 * The size and geometry a new VHD of `size` bytes gets. Without force_size, as qemu-img: the size
 * grows a sector at a time until a geometry covers it, and becomes that geometry's product (so that
 * Virtual PC, which reads the geometry, sees every byte). With force_size: the size itself, in whole
 * sectors. A geometry that does not multiply out to the size is replaced by the maximum one, which
 * every reader (QEMU included, whatever the creator) takes as "use the footer's current size".
 */
export function newDiskSize(size: number, forceSize: boolean): { size: number; chs: Chs } {
  const requested = Math.ceil(size / SECTOR);
  if (forceSize) {
    const chs = calculateGeometry(requested);
    return { size: requested * SECTOR, chs: chsSectors(chs) === requested ? chs : MAX_CHS };
  }
  const wanted = Math.min(MAX_GEOMETRY, requested);
  let chs: Chs = { cylinders: 0, heads: 0, sectors: 0 };
  // Each step adds a sector; the geometry's product passes `wanted` within a few cylinders' worth,
  // and at MAX_GEOMETRY at the latest: the bound only guards against a mistake here.
  for (let i = 0; wanted > chsSectors(chs) && i < 1_000_000; i++) chs = calculateGeometry(wanted + i);
  if (chsSectors(chs) === MAX_GEOMETRY) return { size: requested * SECTOR, chs };
  return { size: chsSectors(chs) * SECTOR, chs };
}

/**
 * The virtual size `azure=on` gives a disk asked to be `size` bytes: Azure takes only fixed VHDs
 * whose virtual size is a whole number of MiB, so the size is rounded up to the next MiB. Returns
 * `size` itself when already whole; the caller may tell the user when it is not.
 */
export function azureSize(size: number): number {
  return Math.ceil(size / MiB) * MiB;
}

/** Creator applications whose disks QEMU (and Hyper-V) size by the footer's current size, not by CHS. */
const SIZED_BY_CURRENT_SIZE = ['win ', 'qem2', 'd2v ', 'CTXS', 'tap\0'];

/**
 * The geometry a disk resized to `size` bytes (whole sectors) records. The size itself goes into the
 * current size, which Windows reads; the geometry must not make a CHS reader see another size. Disks
 * of creators that readers size by the current size get the specification's geometry (as Hyper-V
 * writes it, its product may fall short); others get it only when it multiplies out to the size
 * exactly, else the maximum geometry, which every reader takes as "use the current size".
 */
export function resizedGeometry(creatorApp: string, size: number): Chs {
  const sectors = size / SECTOR;
  const chs = calculateGeometry(sectors);
  if (SIZED_BY_CURRENT_SIZE.includes(creatorApp) || chsSectors(chs) === sectors) return chs;
  return MAX_CHS;
}
