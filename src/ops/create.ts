import { VdiskError } from '../errors.js';
import type { CreateRequest, CreateResult, FormatDriver } from '../formats/driver.js';
import { driverByName, driverForNewFile } from '../formats/drivers.js';
import { openImage } from '../formats/open.js';
import { ReplacingOutput, nodeKind, outputPlace } from '../io/output.js';
import type { Stats } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import type { PositionalFile } from '../io/file.js';
import { resolveCreateOptions, writeNewVhdx, type VhdxCreateOptions } from '../formats/vhdx/create.js';

export interface CreateImageOptions {
  /** A name of the driver table; by the path's ending when absent (.img/.raw: raw), else vhdx. */
  format?: string;
  /** The virtual size; a differencing image or backed image takes its backing image's when absent. */
  size?: number;
  /** -o key=value pairs of the format (`createOptionsOf` lists them). */
  options?: Record<string, string>;
  /** A backing image / differencing parent (-b, -F). */
  backing?: { path: string; format?: string };
  /** Recorded by formats that name their creator. */
  creator?: string;
}

/** The driver that makes new images of `format` (or of the path's kind), refusing formats without create. */
export function creatingDriver(format: string | undefined, path: string, flag = '-f'): FormatDriver {
  const driver = format !== undefined ? driverByName(format, flag) : driverForNewFile(path);
  if (!driver.create) throw new VdiskError('UNSUPPORTED', `${flag} ${driver.name}: vdisk cannot write ${driver.name} images`);
  return driver;
}

/** Checks -o keys against the driver's list before anything is made. */
export function checkedOptions(driver: FormatDriver, options: Record<string, string> = {}): Record<string, string> {
  const known = Object.keys(driver.createOptions ?? {});
  for (const [key, value] of Object.entries(options)) {
    if (!known.includes(key)) {
      throw new VdiskError('USAGE', known.length === 0 ? `-o ${key}: ${driver.name} images take no options` : `-o ${key}: unknown option for ${driver.name} (${known.join(', ')})`);
    }
    if (value === '') throw new VdiskError('USAGE', `-o ${key}: needs a value (${key}=...)`);
  }
  return options;
}

/** Refuses what create must not replace; returns the file to replace or make. */
export async function newImagePlace(path: string): Promise<{ path: string; existing: Stats | null }> {
  const place = await outputPlace(path);
  if (place.kind === 'file') return place;
  const what = place.kind === 'fd' ? 'a descriptor' : nodeKind(place.existing);
  throw new VdiskError('NOT_A_FILE', `${path}: is ${what}; an image is made as a new regular file, so it is left alone`);
}

/**
 * Creates an image at `path` (qemu-img create): a new file, written under a temporary name and
 * renamed over `path` when complete (see ReplacingOutput). A device, FIFO or anything but a regular
 * file at `path` is refused and left alone; an image there that another process has open is refused
 * before anything is made.
 */
export async function createImage(path: string, o: CreateImageOptions): Promise<{ format: string; size: number; notes: string[] }> {
  const driver = creatingDriver(o.format, path);
  const options = checkedOptions(driver, o.options);
  // A relative backing name is relative to the new image's directory (qemu-img's rule): that is how
  // the image will find it once it names it.
  const backing = o.backing ? await openImage(isAbsolute(o.backing.path) ? o.backing.path : join(dirname(path), o.backing.path), { format: o.backing.format }) : null;
  try {
    const size = o.size ?? backing?.virtualSize;
    if (size === undefined) throw new VdiskError('USAGE', 'missing required argument SIZE');
    if (!Number.isSafeInteger(size) || size < 0) throw new VdiskError('USAGE', `size must be a number of bytes, not ${size}`);
    const req: CreateRequest = {
      size,
      options,
      path,
      creator: o.creator ?? 'vdisk',
      ...(backing && o.backing ? { backing: { path: o.backing.path, format: backing.format, image: backing } } : {}),
    };
    let result: CreateResult | void = undefined;
    await createNew(path, async (file) => {
      result = await driver.create!(file, req);
    });
    const made = (result ?? {}) as CreateResult;
    return { format: driver.name, size: made.size ?? size, notes: made.notes ?? [] };
  } finally {
    await backing?.close();
  }
}

/** Writes a new image with `write` under a temporary name and renames it over `path` when complete. */
async function createNew(path: string, write: (file: PositionalFile) => Promise<void>): Promise<void> {
  const place = await newImagePlace(path);
  const out = await ReplacingOutput.begin(place.path, place.existing);
  try {
    await write(out.file);
    await out.file.close();
    await out.commit();
  } catch (err) {
    await out.abort();
    throw err;
  }
}

/** Creates a VHDX at `path` from typed options (the library's shortcut for createImage with -f vhdx). */
export async function createVhdx(path: string, options: VhdxCreateOptions): Promise<void> {
  const o = resolveCreateOptions(options);
  await createNew(path, (file) => writeNewVhdx(file, o));
}

/** Creates a sparse raw image at `path`. */
export async function createRaw(path: string, size: number): Promise<void> {
  await createImage(path, { format: 'raw', size });
}
