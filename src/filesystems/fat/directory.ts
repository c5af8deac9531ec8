import {
  ATTR_DIRECTORY,
  ATTR_VOLUME_ID,
  DELETED,
  END_OF_DIRECTORY,
  ENTRY_SIZE,
  UNITS_PER_SLOT,
  copyLongNameUnits,
  isDotEntry,
  isLongNameSlot,
  isVolumeLabel,
  parseLongNameSlot,
  parseShortEntry,
  shortNameChecksum,
  volumeLabelOf,
  type ShortEntry,
} from './dir-entry.js';

/** A long name has at most 255 characters: 20 slots of 13 (fatgen103 section 7). */
const MAX_LONG_SLOTS = 20;

export interface DirRecord {
  /** The long name when its slots are whole and match the short name's checksum, else the short name. */
  name: string;
  shortName: string;
  entry: ShortEntry;
  /** Byte offset of the short entry within the directory's bytes. */
  offset: number;
}

export interface ParsedDirectory {
  records: DirRecord[];
  /** The first volume-label entry's label (meaningful in the root directory). */
  label?: string;
  /** On-disk `.` and `..` entries with the directory bit: Linux counts them in a directory's link count. */
  dotDirs: number;
  /** Whether an end-of-directory slot was met (otherwise the entries may go on in the next bytes). */
  ended: boolean;
  /** Entries left out because no usable name could be made for them. */
  unnamed: number[];
}

interface PendingName {
  checksum: number;
  /** The order number of the slot expected next; 0 once all slots are in. */
  expect: number;
  /** Slots in the name. */
  count: number;
}

/**
 * The entries of one directory's bytes, in on-disk order. Long names are assembled from their slots,
 * which come in reverse order before their short entry (section 7.1); a slot out of sequence, a
 * checksum that does not match, or a deleted or missing short entry orphans the slots, and the short
 * name stands alone, as Linux's vfat does. Deleted entries and volume labels are left out; the first
 * end-of-directory slot ends the listing (section 6.1).
 */
export function parseDirectory(buf: Buffer, fat32: boolean): ParsedDirectory {
  const out: ParsedDirectory = { records: [], dotDirs: 0, ended: false, unnamed: [] };
  let pending: PendingName | null = null;
  const units = new Uint16Array(MAX_LONG_SLOTS * UNITS_PER_SLOT);
  for (let at = 0; at + ENTRY_SIZE <= buf.length; at += ENTRY_SIZE) {
    const first = buf[at];
    if (first === END_OF_DIRECTORY) {
      out.ended = true;
      break;
    }
    if (first === DELETED) {
      pending = null;
      continue;
    }
    if (isLongNameSlot(buf, at)) {
      pending = nextSlot(pending, buf, at, units);
      continue;
    }
    const slots = pending;
    pending = null;
    if (isVolumeLabel(buf, at)) {
      if (out.label === undefined) out.label = volumeLabelOf(buf, at);
      continue;
    }
    if (buf[at + 11] & ATTR_VOLUME_ID) continue; // neither a file nor a directory
    if (isDotEntry(buf, at)) {
      if (buf[at + 11] & ATTR_DIRECTORY) out.dotDirs++;
      continue;
    }
    const entry = parseShortEntry(buf, at, fat32);
    const long = slots && slots.expect === 0 && slots.checksum === shortNameChecksum(buf, at) ? longName(units, slots.count) : undefined;
    const name = long !== undefined && usable(long) ? long : entry.name;
    if (!usable(name)) {
      out.unnamed.push(at);
      continue;
    }
    out.records.push({ name, shortName: entry.name, entry, offset: at });
  }
  return out;
}

/** Takes a long-name slot into the name being assembled, or drops the name when the slot does not continue it. */
function nextSlot(pending: PendingName | null, buf: Buffer, at: number, units: Uint16Array): PendingName | null {
  const slot = parseLongNameSlot(buf, at);
  if (slot.order < 1 || slot.order > MAX_LONG_SLOTS) return null;
  if (slot.last) {
    copyLongNameUnits(buf, at, units, (slot.order - 1) * UNITS_PER_SLOT);
    return { checksum: slot.checksum, expect: slot.order - 1, count: slot.order };
  }
  if (!pending || slot.order !== pending.expect || slot.checksum !== pending.checksum) return null;
  copyLongNameUnits(buf, at, units, (slot.order - 1) * UNITS_PER_SLOT);
  pending.expect--;
  return pending;
}

/** The name's UTF-16 code units up to the first NUL (the rest is 0xFFFF padding). */
function longName(units: Uint16Array, slots: number): string | undefined {
  let end = 0;
  const max = slots * UNITS_PER_SLOT;
  while (end < max && units[end] !== 0) end++;
  return end === 0 ? undefined : String.fromCharCode(...units.subarray(0, end));
}

/** A name a path can hold: not empty, not `.` or `..`, without `/` or NUL. */
function usable(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !/[/\0]/u.test(name);
}
