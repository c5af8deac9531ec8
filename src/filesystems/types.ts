import type { HostRange } from '../formats/image.js';

/** What a detector found, spelled as `blkid -p -o export` spells TYPE, VERSION, LABEL and UUID. */
export interface FsInfo {
  filesystem: string;
  version?: string;
  label?: string;
  /** FAT's boot-sector copy of the label, which blkid reports beside LABEL (LABEL_FATBOOT). */
  labelFatboot?: string;
  uuid?: string;
  /** An external journal or log's file-system UUID (blkid's LOGUUID). */
  logUuid?: string;
  /** Bytes, where the superblock states it. */
  size?: number;
}

/** Reads bytes of one volume (a partition or the whole disk); past its end reads zeros. */
export interface VolumeReader {
  readonly size: number;
  /** False for a partition: some signatures (BIOS RAID metadata) count only on a whole disk. */
  readonly wholeDisk?: boolean;
  read(offset: number, length: number): Promise<Buffer>;
  /**
   * Fills `buf` from `offset` (past the end: zeros) without allocating: file readers use it for large
   * reads, where a fresh buffer per read and the copy out of it cost more than the read itself.
   */
  readInto?(buf: Uint8Array, offset: number): Promise<void>;
  /** Where a range lies unchanged in a host file (DiskImage.hostRange); null when it does not. */
  hostRange?(offset: number, length: number): HostRange | null;
}

export interface Detector {
  name: string;
  probe(v: VolumeReader): Promise<FsInfo | null>;
}

/** Trailing spaces and NULs off, as blkid trims labels. */
export function trimLabel(s: string): string | undefined {
  const t = s.replace(/[\s\0]+$/u, '');
  return t === '' ? undefined : t;
}

export function uuidFromBytes(b: Buffer): string | undefined {
  if (b.every((x) => x === 0)) return undefined;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** DOS-style serials (FAT, exFAT, HPFS): `ABCD-1234` from four little-endian bytes. */
export function dosSerial(b: Buffer, at: number): string {
  const x = (i: number) => b[at + i].toString(16).toUpperCase().padStart(2, '0');
  return `${x(3)}${x(2)}-${x(1)}${x(0)}`;
}
