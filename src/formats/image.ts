/** What a range of the virtual disk holds, as far as the format knows without reading the data. */
export type ExtentState = 'data' | 'zero' | 'unallocated';

export interface Extent {
  offset: number;
  length: number;
  state: ExtentState;
}

export type ImageFormat = 'raw' | 'vhdx';

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
