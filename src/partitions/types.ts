import type { HostRange } from '../formats/image.js';

export type Scheme = 'mbr' | 'gpt' | 'bsd';

export interface Partition {
  /** Numbered as sfdisk and partx do: MBR primaries 1-4, logicals from 5, nested BSD after them. */
  index: number;
  /** Bytes from the start of the disk. */
  start: number;
  size: number;
  /** `0x83` for MBR, the lower-case type GUID for GPT, `0x07`-style fstype for BSD. */
  type: string;
  description: string;
  name?: string;
  uuid?: string;
  bootable?: boolean;
  /** GPT attribute bits as `0x...` (64-bit). */
  attributes?: string;
  /** Set on partitions of a BSD label found inside an MBR slice. */
  scheme?: Scheme;
  parent?: number;
}

export interface PartitionTable {
  scheme: Scheme | null;
  sectorSize: number;
  /** MBR disk signature (`0x1234abcd`) or GPT disk GUID. */
  id?: string;
  partitions: Partition[];
  warnings: string[];
}

/** Reads bytes at a disk offset; short of the end reads zeros. */
export interface SectorReader {
  readonly size: number;
  read(offset: number, length: number): Promise<Buffer>;
  /** Fills `buf` from `offset`, zeros past the end, without allocating. */
  readInto?(buf: Uint8Array, offset: number): Promise<void>;
  /** Where a range lies unchanged in a host file (DiskImage.hostRange); null when it does not. */
  hostRange?(offset: number, length: number): HostRange | null;
}
