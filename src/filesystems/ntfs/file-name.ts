import { refRecord } from './record.js';

/**
 * $FILE_NAME (type 0x30): a file's name in one parent directory, also the key of directory index
 * entries (NTFS Documentation, "$FILE_NAME"). A file has one per hard link and namespace.
 */

/** Name namespaces: POSIX (case-sensitive, any character), Win32, DOS 8.3, and a Win32 name that is also a valid DOS name. */
export const NS_POSIX = 0;
export const NS_WIN32 = 1;
export const NS_DOS = 2;
export const NS_WIN32_AND_DOS = 3;

/** File attribute bits as $FILE_NAME and $STANDARD_INFORMATION store them (MS-FSCC 2.6). */
export const FA = {
  READONLY: 0x1,
  HIDDEN: 0x2,
  SYSTEM: 0x4,
  ARCHIVE: 0x20,
  DEVICE: 0x40,
  TEMPORARY: 0x100,
  SPARSE: 0x200,
  REPARSE_POINT: 0x400,
  COMPRESSED: 0x800,
  OFFLINE: 0x1000,
  NOT_CONTENT_INDEXED: 0x2000,
  ENCRYPTED: 0x4000,
  /** In $FILE_NAME: the file is a directory (has an $I30 index). */
  DIRECTORY: 0x10000000,
} as const;

export interface FileName {
  parent: number;
  flags: number;
  /** In $FILE_NAME of a reparse point: its tag. */
  reparseTag: number;
  namespace: number;
  /** The name as UTF-16 code units, for collation. */
  units: Uint16Array;
  name: string;
}

/** The $FILE_NAME value in b[at, end), or what is wrong. */
export function parseFileName(b: Buffer, at: number, end: number): FileName | string {
  if (at + 66 > end) return 'file name truncated';
  const length = b[at + 64];
  if (at + 66 + length * 2 > end) return 'file name runs past its attribute';
  const units = new Uint16Array(length);
  for (let i = 0; i < length; i++) units[i] = b.readUInt16LE(at + 66 + i * 2);
  return {
    parent: refRecord(b, at),
    flags: b.readUInt32LE(at + 56),
    reparseTag: b.readUInt32LE(at + 60),
    namespace: b[at + 65],
    units,
    name: b.toString('utf16le', at + 66, at + 66 + length * 2),
  };
}
