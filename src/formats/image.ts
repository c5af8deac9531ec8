import { VdiskError } from '../errors.js';
import type { FormatDetails, Mapping } from './driver.js';

/** What a range of the virtual disk holds, as far as the format knows without reading the data. */
export type ExtentState = 'data' | 'zero' | 'unallocated';

export interface Extent {
  offset: number;
  length: number;
  state: ExtentState;
}

/** Bytes at `position` of the host file open as descriptor `fd`. */
export interface HostRange {
  fd: number;
  position: number;
}

/** A format's name in the driver table (drivers.ts): 'raw', 'vhdx', ... */
export type ImageFormat = string;

/** The one interface every format provides; partition and file-system code sees only this. */
export interface DiskImage {
  readonly format: ImageFormat;
  readonly filename: string;
  readonly virtualSize: number;
  /** Logical sector size the format declares (512 for raw, where it cannot tell). */
  readonly logicalSectorSize: number;
  /** Reads exactly `buf.length` bytes at virtual offset `offset`; the range must be inside the disk. */
  read(buf: Uint8Array, offset: number): Promise<void>;
  /** Allocation map of [offset, offset+length), adjacent extents of one state merged. */
  blockStatus(offset: number, length: number): Promise<Extent[]>;
  /** Writes at virtual offset `offset`; the image must have been opened read-write. */
  write(buf: Uint8Array, offset: number): Promise<void>;
  /** Makes every write so far durable (and, for VHDX, reachable through committed metadata). */
  flush(): Promise<void>;
  /** A natural unit for streaming: the block size, or a default for formats without one. */
  readonly preferredChunk: number;
  close(): Promise<void>;
  /** The image this one reads through where it stores nothing (a differencing parent, a backing file). */
  backingImage?(): Promise<DiskImage | null>;
  /**
   * Where [offset, offset+length) of the virtual disk lies in one piece, unchanged, in a host file
   * that stays open as long as the image (a raw image: the file itself); null when it does not. Lets
   * a copy of many small files read them on another thread, straight from the file.
   */
  hostRange?(offset: number, length: number): HostRange | null;
  /** Every file the image is made of besides `filename` (VMDK extents, descriptors). */
  readonly otherFiles?: readonly string[];
  /** The format's details for `info`. */
  describe?(): Promise<FormatDetails>;
  /**
   * How [offset, offset+length) is stored, in order, covering the range, for `map`. Callers ask
   * for bounded windows; formats without it are mapped as data where they are.
   */
  mapping?(offset: number, length: number): Promise<Mapping[]>;
  /**
   * Changes the virtual size to `newSize` bytes (`resize`), on an image opened read-write. Callers
   * check a shrink first (nothing stored past the new end that matters); formats that cannot change
   * size leave it out, and formats that refuse this image (a differencing child) throw UNSUPPORTED.
   */
  resize?(newSize: number): Promise<void>;
  /**
   * Gives back file space (`compact`, as Optimize-VHD): blocks that read as zeros, and blocks lying
   * wholly in `discardable` (virtual-disk ranges whose content nobody needs: the guest file systems'
   * free space), stop being stored, the rest move down and the file shrinks. With `dryRun` only
   * reports (the image may then be open read-only).
   */
  compact?(options: CompactOptions): Promise<CompactResult>;
  /**
   * Merges this image (a differencing child, opened read-write) into its backing image (`commit`, as
   * qemu-img commit): the parent is written, and without `keepChild` this image is emptied so that
   * the chain still reads the same. Returns the parent's path and the bytes copied.
   */
  commit?(options?: { keepChild?: boolean; onProgress?: (done: number, total: number) => void }): Promise<{ parent: string; bytes: number }>;
  /**
   * Makes `newParent` (open read-only, at `newParentPath`) this image's backing image (`rebase`, as
   * qemu-img rebase): safe mode first copies into this image whatever would read differently;
   * `unsafe` changes only the reference.
   */
  rebase?(newParent: DiskImage, newParentPath: string, options?: { unsafe?: boolean; onProgress?: (done: number, total: number) => void }): Promise<void>;
}

export interface CompactOptions {
  discardable: readonly { offset: number; length: number }[];
  dryRun?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export interface CompactResult {
  fileBytesBefore: number;
  fileBytesAfter: number;
  /** Blocks the image stored before. */
  blocksStored: number;
  /** Of those, dropped as lying in free space, and as holding only zeros. */
  blocksFree: number;
  blocksZero: number;
  /** Blocks moved down to fill the holes. */
  blocksMoved: number;
}

export function mergeExtents(extents: Extent[]): Extent[] {
  const out: Extent[] = [];
  for (const e of extents) {
    const last = out[out.length - 1];
    if (last && last.state === e.state && last.offset + last.length === e.offset) last.length += e.length;
    else out.push({ ...e });
  }
  return out;
}

/**
 * Closes an image of a chain: flushes it, closes its file whatever the flush did, then its parent
 * (opened or being opened; one that failed to open has nothing to close). `takeParent` hands the
 * parent over and forgets it, so that a second close does not close it twice.
 */
export async function closeWithParent(flush: () => Promise<void>, file: { close(): Promise<void> }, takeParent: () => Promise<DiskImage> | null): Promise<void> {
  try {
    await flush();
  } finally {
    await file.close();
    const parent = takeParent();
    if (parent) await parent.then((p) => p.close(), () => undefined);
  }
}

/** One piece of a request [offset, offset+length) that falls inside one block of `blockSize` bytes. */
export interface BlockSegment {
  block: number;
  /** Offset of the piece inside its block. */
  inBlock: number;
  /** Offset of the piece inside the request. */
  done: number;
  n: number;
}

/** The pieces of [offset, offset+length) that fall in one block each, in order. */
export function* blockSegments(offset: number, length: number, blockSize: number): Generator<BlockSegment> {
  for (let done = 0; done < length; ) {
    const pos = offset + done;
    const block = Math.floor(pos / blockSize);
    const inBlock = pos - block * blockSize;
    const n = Math.min(blockSize - inBlock, length - done);
    yield { block, inBlock, done, n };
    done += n;
  }
}

/** Refuses a request outside the virtual disk (or not a safe integer) before any format code sees it. */
export function checkRange(img: { filename: string; virtualSize: number }, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 ||
      offset + length > img.virtualSize) {
    throw new VdiskError(
      'RANGE',
      `${img.filename}: range ${offset}+${length} is outside the virtual disk (${img.virtualSize} bytes)`,
    );
  }
}
