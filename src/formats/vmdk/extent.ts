import type { PositionalFile } from '../../io/file.js';
import { SECTOR } from './constants.js';

/** One run of an extent as stored: bytes at `fileOffset` in the extent's file (absent when compressed), zeros, or nothing. */
export interface ExtentRun {
  offset: number;
  length: number;
  kind: 'data' | 'zero' | 'unallocated';
  fileOffset?: number;
  compressed?: boolean;
}

/** One extent line's storage: a sparse file, a flat file, or zeros. Offsets are within the extent. */
export interface VmdkExtent {
  readonly kind: 'sparse' | 'flat' | 'zero';
  readonly filename: string | null;
  runs(offset: number, length: number): Promise<ExtentRun[]>;
  readData(buf: Uint8Array, run: ExtentRun, from: number): Promise<void>;
}


/** FLAT and VMFS extents: the extent's sectors in order from `start` in the file. */
export class FlatExtent implements VmdkExtent {
  readonly kind = 'flat' as const;
  constructor(readonly file: PositionalFile, readonly startSector: number) {}

  get filename(): string {
    return this.file.path;
  }

  async runs(offset: number, length: number): Promise<ExtentRun[]> {
    return [{ offset, length, kind: 'data', fileOffset: this.startSector * SECTOR + offset }];
  }

  /** Writes in place: a flat extent has every sector where it will always be. */
  async writeData(buf: Uint8Array, offset: number): Promise<void> {
    await this.file.writeAt(buf, this.startSector * SECTOR + offset);
  }

  async readData(buf: Uint8Array, run: ExtentRun, from: number): Promise<void> {
    // Past the end of a short flat file the disk reads as zeros, as QEMU reads it.
    await this.file.readAt(buf, run.fileOffset! + (from - run.offset));
  }
}

/** ZERO extents: no file, every byte zero. */
export class ZeroExtent implements VmdkExtent {
  readonly kind = 'zero' as const;
  readonly filename = null;
  async runs(offset: number, length: number): Promise<ExtentRun[]> {
    return [{ offset, length, kind: 'zero' }];
  }
  async readData(): Promise<void> {}
}
