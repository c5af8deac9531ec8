import type { OpenMode, PositionalFile } from '../io/file.js';
import type { CheckReport } from '../ops/check-report.js';
import type { DiskImage } from './image.js';

/**
 * A format driver: one row of the table in drivers.ts (QEMU's BlockDriver, IPRT's DVM backends).
 * Commands and operations look formats up there and call these hooks; none of them switches on a
 * format's name. A driver without `open` names a format vdisk recognises but does not read: its
 * files are refused by name instead of being read as raw.
 */
export interface FormatDriver {
  /** qemu-img's name for the format (`-f`, `-O`, `info`'s "format"). */
  readonly name: string;
  /** Other names `-f`/`-O` accept (VHD's "vhd" for qemu-img's "vpc"). */
  readonly aliases?: readonly string[];
  /** One line for `vdisk formats` and error messages. */
  readonly description: string;
  /** File-name endings (lower case, with the dot) that make `create` choose this format without -f. */
  readonly extensions?: readonly string[];
  /**
   * How sure the driver is that the file is in its format, 0 (not at all) to 100 (signature and
   * checksum): the best score wins, raw scores 1 and is the fallback. Looks only at the bytes given.
   */
  probe(p: ProbeInput): number;
  /** Opens an image whose file is already open (and locked) in the mode asked for. */
  open?(file: PositionalFile, ctx: OpenContext): Promise<DiskImage>;
  /** `-o` keys create and convert accept, each with its help line (`-o help`). */
  readonly createOptions?: Readonly<Record<string, string>>;
  /**
   * Writes a new, empty image of `req.size` into `file` (new, empty, locked; renamed over the
   * output path by the caller when this returns). Must throw a USAGE VdiskError for bad options
   * before writing anything.
   */
  create?(file: PositionalFile, req: CreateRequest): Promise<void | CreateResult>;
  /**
   * For formats written only in order (streamOptimized VMDK, compressed qcow2): writes the whole new
   * image from `source` in one pass. Returns false when these options need no such pass, and convert
   * then does create + open + write as for every other format; true or a CreateResult when done.
   */
  convertFrom?(source: DiskImage, file: PositionalFile, req: CreateRequest, onProgress?: (done: number, total: number) => void): Promise<boolean | CreateResult>;
  /**
   * `measure` (qemu-img measure): the file size a new image of `req.size` needs, holding
   * `allocatedBytes` of data (required) and holding every byte (fully allocated).
   */
  measure?(req: CreateRequest, allocatedBytes: number): { required: number; fullyAllocated: number };
  /**
   * The unit a new image of `req` allocates in (its block or cluster size), so that `measure` counts the
   * source's data in whole units, as qemu-img measure counts clusters. Absent: counted in bytes.
   */
  measureGranularity?(req: CreateRequest): number;
  /** `check` (and `check -r`) on a file open and locked ('rw' and exclusive when repairing). */
  check?(file: PositionalFile, options: DriverCheckOptions): Promise<CheckReport>;
}

export interface ProbeInput {
  /** The file's first bytes: 64 KiB, or the whole file when shorter (zero-padded to 512). */
  head: Buffer;
  /** The last 512 bytes, or null for a file shorter than 1 KiB. */
  tail: Buffer | null;
  size: number;
  filename: string;
}

export interface OpenContext {
  mode: OpenMode;
  /** -U: the user asked to look without the shared lock; backing images are opened the same way. */
  forceShare: boolean;
  /** The format came from the probe rather than from -f. */
  probed: boolean;
  /** How deep in a backing chain this image sits (0: the one the user named). */
  depth: number;
  /**
   * Opens an image of this one's chain (a differencing parent, a backing file) read-only, with a
   * shared lock, through the table (probing unless `format` is given). Refuses chains deeper than
   * the bound, so a loop of locators ends in an error.
   */
  openBacking(path: string, format?: string): Promise<DiskImage>;
  /** Opens a further file of this image (a VMDK extent) in the same mode, with the same lock. */
  openFile(path: string): Promise<PositionalFile>;
}

export interface CreateRequest {
  /** The virtual size in bytes. */
  size: number;
  /** -o key=value pairs, keys already checked against the driver's createOptions. */
  options: Readonly<Record<string, string>>;
  /** The final path of the image (the file being written may have a temporary name). */
  path: string;
  /** Who made the image, for formats that record it ("vdisk v0.1.0"). */
  creator: string;
  /** A backing image / differencing parent (-b), opened read-only. */
  backing?: { path: string; format: string; image: DiskImage };
  /** The image a convert copies, for details worth inheriting (sector sizes). */
  source?: DiskImage;
}

/** What a create wants the user told (a size rounded to what the format or a cloud requires). */
export interface CreateResult {
  /** The virtual size the image got, when not the size asked for. */
  size?: number;
  /** One line each, printed on stderr as `vdisk: note: ...`. */
  notes?: string[];
}

export interface DriverCheckOptions {
  repair: 'none' | 'leaks' | 'all';
  /** Units examined so far, of all. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * One run of the virtual disk as the format stores it, for `map`: bytes in this file (at
 * `fileOffset` when the format can say, absent for compressed data), zeros the format records, a
 * range nobody stores (reads as zeros), or a range this image defers to its backing image.
 */
export interface Mapping {
  offset: number;
  length: number;
  kind: 'data' | 'zero' | 'unallocated' | 'backing';
  fileOffset?: number;
  /** The file holding the data when not the image's own (a VMDK extent, an external data file). */
  filename?: string;
}

/** What `info` adds for a format, with qemu-img info's keys where qemu-img has them. */
export interface FormatDetails {
  'cluster-size'?: number;
  'dirty-flag'?: boolean;
  'backing-filename'?: string;
  'full-backing-filename'?: string;
  'backing-filename-format'?: string;
  encrypted?: boolean;
  snapshots?: unknown[];
  'format-specific'?: { type: string; data: Record<string, unknown> };
}
