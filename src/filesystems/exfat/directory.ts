import {
  ENTRY_BENIGN,
  ENTRY_IN_USE,
  ENTRY_SECONDARY,
  ENTRY_SIZE,
  MAX_SECONDARY_COUNT,
  MIN_SECONDARY_COUNT,
  TYPE_ALLOCATION_BITMAP,
  TYPE_END_OF_DIRECTORY,
  TYPE_FILE,
  TYPE_UPCASE_TABLE,
  TYPE_VOLUME_LABEL,
  parseBitmapEntry,
  parseFileEntrySet,
  parseUpcaseEntry,
  parseVolumeLabel,
  secondaryCount,
  type BitmapEntry,
  type FileEntrySet,
  type UpcaseEntry,
} from './entries.js';
import type { ExfatLayout } from './layout.js';
import type { ClusterStream, VolumePiece } from './stream.js';

/**
 * Reading one directory's entries (specification 6): the entry sets of its files, and in the root the
 * system entries (allocation bitmaps, up-case table, volume label). The directory is read in large
 * chunks; an entry set may straddle two chunks (and two clusters of a fragmented directory).
 */

/** A directory is at most 256 MiB (7.6.5, DataLength of a directory). */
export const MAX_DIRECTORY_BYTES = 256 * 1024 * 1024;

const CHUNK_BYTES = 1024 * 1024;

export interface DirectoryFile {
  set: FileEntrySet;
  /** Byte offset of the File entry in the volume: unique, so it serves as the inode number (divided by 32). */
  volumeOffset: number;
}

export interface DirectoryContents {
  files: DirectoryFile[];
  /** Root only. */
  label?: string;
  bitmaps: BitmapEntry[];
  upcase?: UpcaseEntry;
}

/**
 * Every entry of the directory up to its end-of-directory mark. Damaged entry sets are skipped with a
 * warning naming the directory (`where`); a SetChecksum mismatch is warned about but the file is kept,
 * as its fields passed every other check.
 */
export async function readDirectory(layout: ExfatLayout, stream: ClusterStream, where: string): Promise<DirectoryContents> {
  const out: DirectoryContents = { files: [], bitmaps: [] };
  const size = Math.floor(stream.size / ENTRY_SIZE) * ENTRY_SIZE;
  let carry = Buffer.alloc(0);
  let carryPieces: VolumePiece[] = [];
  const warn = (what: string) => layout.warn(`exfat ${where}: ${what}`);
  for (let chunkStart = 0; chunkStart < size; chunkStart += CHUNK_BYTES) {
    const length = Math.min(CHUNK_BYTES, size - chunkStart);
    const chunkPieces = await stream.pieces(chunkStart, length);
    const chunk = Buffer.alloc(length);
    await stream.read(chunk, chunkStart);
    const buf = carry.length ? Buffer.concat([carry, chunk]) : chunk;
    const pieces = [...carryPieces, ...chunkPieces];
    const base = chunkStart - carry.length; // directory offset of buf[0]
    const last = chunkStart + length >= size;
    let pi = 0; // entries come in order: the piece holding the current one only moves forward
    let o = 0;
    for (; o + ENTRY_SIZE <= buf.length; o += ENTRY_SIZE) {
      const type = buf[o];
      if (type === TYPE_END_OF_DIRECTORY) return out;
      // Deleted and unused entries, and secondaries whose primary was skipped.
      if (!(type & ENTRY_IN_USE) || type & ENTRY_SECONDARY) continue;
      if (type === TYPE_FILE) {
        const count = secondaryCount(buf, o);
        if (count < MIN_SECONDARY_COUNT || count > MAX_SECONDARY_COUNT) {
          warn(`entry set at offset ${base + o}: SecondaryCount ${count} is not in 2-18; skipped`);
          continue;
        }
        const need = (1 + count) * ENTRY_SIZE;
        if (o + need > buf.length) {
          if (!last) break; // the rest of the set comes with the next chunk
          warn(`entry set at offset ${base + o} runs past the end of the directory; skipped`);
          continue;
        }
        const set = parseFileEntrySet(buf, o);
        if (typeof set === 'string') {
          warn(`entry set at offset ${base + o}: ${set}; skipped`);
          continue;
        }
        if (!set.checksumOk) warn(`${set.name}: entry set checksum mismatch`);
        while (pi < pieces.length - 1 && pieces[pi].position + pieces[pi].length <= base + o) pi++;
        const p = pieces[pi];
        out.files.push({ set, volumeOffset: p.offset + (base + o - p.position) });
        o += need - ENTRY_SIZE;
      } else if (type === TYPE_ALLOCATION_BITMAP) {
        out.bitmaps.push(parseBitmapEntry(buf, o));
      } else if (type === TYPE_UPCASE_TABLE) {
        out.upcase ??= parseUpcaseEntry(buf, o);
      } else if (type === TYPE_VOLUME_LABEL) {
        out.label ??= parseVolumeLabel(buf, o);
      } else if (!(type & ENTRY_BENIGN)) {
        // Benign primaries (volume GUID, TexFAT padding) may be ignored; a critical one may not (6.3).
        warn(`unknown critical entry type 0x${type.toString(16)} at offset ${base + o}; skipped`);
      }
    }
    carry = Buffer.from(buf.subarray(o));
    const carryStart = base + o;
    carryPieces = pieces.filter((p) => p.position + p.length > carryStart);
  }
  return out;
}
