import { PositionalFile, type OpenMode } from '../io/file.js';
import { VdiskError } from '../errors.js';
import type { DiskImage } from './image.js';
import type { FormatDriver, OpenContext, ProbeInput } from './driver.js';
import { driverByName, probeDriver } from './drivers.js';
import { lockFor } from '../io/lock.js';

export interface OpenImageOptions {
  /** Skip probing and treat the file as this format (a name or alias of the driver table). */
  format?: string;
  mode?: OpenMode;
  /** 'unsafe': skip flushes (qemu-img's cache=unsafe). */
  cache?: 'writeback' | 'unsafe';
  /**
   * Open without the image lock (qemu-img's -U, --force-share), for looking at an image another
   * process has open for writing. Refused with mode 'rw'.
   */
  forceShare?: boolean;
}

/** Images a chain may hold: a loop of locators or backing names ends here in an error. */
export const MAX_CHAIN = 16;

const PROBE_HEAD = 64 * 1024;

/** The first and last bytes the probes look at. */
export async function probeInput(file: PositionalFile): Promise<ProbeInput> {
  const size = file.size();
  const head = Buffer.alloc(Math.max(512, Math.min(PROBE_HEAD, size)));
  await file.readAt(head, 0);
  let tail: Buffer | null = null;
  if (size >= 1024) {
    tail = Buffer.alloc(512);
    await file.readAt(tail, size - 512);
  }
  return { head, tail, size, filename: file.path };
}

/**
 * The driver for an open file, by the best probe score; a file carrying the signature of a format
 * vdisk does not read yet is refused by name (`-f raw` still reads it as bytes).
 */
export async function probeFile(file: PositionalFile): Promise<FormatDriver> {
  const driver = probeDriver(await probeInput(file));
  if (!driver.open) {
    throw new VdiskError('UNSUPPORTED', `${file.path}: unsupported format ${driver.name} (${driver.description}; -f raw reads the file as plain bytes)`);
  }
  return driver;
}

/** The format's name, by probing. */
export async function probeFormat(file: PositionalFile): Promise<string> {
  return (await probeFile(file)).name;
}

/** Opens an image by path, probing the format unless one is given. The single entry point of the library. */
export function openImage(path: string, options: OpenImageOptions = {}): Promise<DiskImage> {
  return openAt(path, options, 0);
}

async function openAt(path: string, options: OpenImageOptions, depth: number): Promise<DiskImage> {
  const mode = options.mode ?? 'r';
  const forced = options.format !== undefined ? driverByName(options.format) : null;
  const forceShare = options.forceShare ?? false;
  // The one place an image takes its lock: shared to look, exclusive to change it, before the first
  // byte is read, held until close. Backing images come through here too (openBacking).
  const file = await PositionalFile.open(path, mode, { lock: lockFor(mode, forceShare) });
  if (options.cache) file.cache = options.cache;
  try {
    const driver = forced ?? (await probeFile(file));
    return await openWith(driver, file, { forceShare, probed: !forced, depth });
  } catch (err) {
    await file.close();
    throw err;
  }
}

/** Opens a file already open (and locked) as `driver`'s format: for images vdisk has just made too. */
export function openWith(driver: FormatDriver, file: PositionalFile, at: { forceShare?: boolean; probed?: boolean; depth?: number } = {}): Promise<DiskImage> {
  const mode = file.mode;
  const forceShare = at.forceShare ?? false;
  const depth = at.depth ?? 0;
  if (!driver.open) throw new VdiskError('UNSUPPORTED', `${file.path}: vdisk does not read ${driver.name} images`);
  const ctx: OpenContext = {
    mode,
    forceShare,
    probed: at.probed ?? false,
    depth,
    openBacking: async (backing, format) => {
      if (depth + 1 >= MAX_CHAIN) throw new VdiskError('CORRUPT', `${file.path}: backing chain deeper than ${MAX_CHAIN} images (a loop?)`);
      // A backing image is only read, by writers of the child too: a shared lock keeps writers out.
      return openAt(backing, { format, forceShare }, depth + 1);
    },
    openFile: (other) => PositionalFile.open(other, mode, { lock: lockFor(mode, forceShare) }),
  };
  return driver.open(file, ctx);
}
