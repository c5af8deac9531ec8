import type { Where } from './directory-record.js';
import { VdiskError } from '../../errors.js';

/**
 * The System Use Sharing Protocol (SUSP 1.12): entries of `signature(2) length(1) version(1) data` in
 * a directory record's system use area, continued through CE entries into continuation areas
 * elsewhere on the volume (5.1), ended by ST (5.4) or the end of the area. SP in the root's "."
 * record says SUSP is in use and how many bytes to skip in every other record (5.3).
 */

/**
 * An entry: `length` bytes at `at` of `area`, header included, so that offsets from `at` match the
 * specifications' tables. Kept as offsets rather than a view, which every entry of every record paid
 * for; the area up to `end` (where the entry's area ends) is what genisoimage's SL entries whose length
 * byte wrapped past 255 need.
 */
export interface SuspEntry {
  signature: string;
  version: number;
  area: Buffer;
  at: number;
  length: number;
  end: number;
}

/** A continuation area: logical block, byte offset in it, length (SUSP 5.1). */
export interface ContinuationArea {
  block: number;
  offset: number;
  length: number;
}

/** Linux follows at most 32 continuation areas per record; generous for any real writer. */
export const MAX_CONTINUATIONS = 32;
/** Continuation areas are small (xorriso and genisoimage write at most a block); bounds what one CE may ask to read. */
export const MAX_CONTINUATION_LENGTH = 64 * 1024;

/** The SP entry of the root's "." record: its skip length, or null when SUSP is not in use (SUSP 5.3). */
export function suspSkip(systemUse: Buffer, at: number): number | null {
  if (systemUse.length < at + 7) return null;
  if (systemUse.toString('latin1', at, at + 2) !== 'SP' || systemUse[at + 2] < 7) return null;
  if (systemUse[at + 4] !== 0xbe || systemUse[at + 5] !== 0xef) return null;
  return systemUse[at + 6];
}

/** Signatures met, by their two bytes: the same few strings for every entry of every record, not a new one each. */
const signatures = new Map<number, string>();

function signatureAt(area: Buffer, pos: number): string {
  const code = (area[pos] << 8) | area[pos + 1];
  let s = signatures.get(code);
  if (s === undefined) {
    s = area.toString('latin1', pos, pos + 2);
    // At most 65536 two-byte signatures exist: bounded whatever a volume holds.
    signatures.set(code, s);
  }
  return s;
}

/**
 * Entries of one area (bytes [from, end) of `area`), and the continuation it names, if any. A malformed
 * tail ends the area, as Linux does.
 */
export function parseArea(area: Buffer, from: number, end: number, into: SuspEntry[]): ContinuationArea | null {
  let next: ContinuationArea | null = null;
  let pos = from;
  while (pos + 4 <= end) {
    const len = area[pos + 2];
    if (len < 4 || pos + len > end) break;
    const signature = signatureAt(area, pos);
    if (signature === 'ST') break;
    if (signature === 'CE' && len >= 28) {
      next = { block: area.readUInt32LE(pos + 4), offset: area.readUInt32LE(pos + 12), length: area.readUInt32LE(pos + 20) };
    } else {
      into.push({ signature, version: area[pos + 3], area, at: pos, length: len, end });
    }
    pos += len;
  }
  return next;
}

export interface SuspSource {
  blockSize: number;
  volumeSize: number;
  read(offset: number, length: number): Promise<Buffer>;
  /** Names the record in messages: "<volume>: directory record at byte N". */
  where: Where;
  /** Told of every continuation area read, for the map of used space. */
  onContinuation?(offset: number, length: number): void;
}

/** All SUSP entries of a record's area: its own, then each continuation area in turn, bounded and loop-checked. */
export function readSuspEntries(area: Buffer, src: SuspSource): SuspEntry[] | Promise<SuspEntry[]> {
  const entries: SuspEntry[] = [];
  const next = parseArea(area, 0, area.length, entries);
  // Most records have no continuation area: their entries come without a promise.
  return next ? followContinuations(next, entries, src) : entries;
}

/** The entries of the continuation areas (CE) from `first` on, each read once: a loop is refused. */
export async function followContinuations(first: ContinuationArea, entries: SuspEntry[], src: SuspSource): Promise<SuspEntry[]> {
  const seen = new Set<number>();
  let next: ContinuationArea | null = first;
  for (let hops = 0; next; hops++) {
    const { block, offset, length } = next;
    if (hops >= MAX_CONTINUATIONS) {
      throw new VdiskError('CORRUPT', `${src.where}: more than ${MAX_CONTINUATIONS} SUSP continuation areas`);
    }
    const at = block * src.blockSize + offset;
    if (length === 0 || length > MAX_CONTINUATION_LENGTH || at + length > src.volumeSize) {
      throw new VdiskError('CORRUPT', `${src.where}: SUSP continuation area (block ${block}, offset ${offset}, length ${length}) lies outside the volume or is oversized`);
    }
    if (seen.has(at)) throw new VdiskError('CORRUPT', `${src.where}: SUSP continuation areas form a loop at block ${block}, offset ${offset}`);
    seen.add(at);
    src.onContinuation?.(at, length);
    const area = await src.read(at, length);
    next = parseArea(area, 0, area.length, entries);
  }
  return entries;
}

/** The extension identifiers the ER entries name (SUSP 5.5): "RRIP_1991A", "IEEE_P1282", "IEEE_1282" for Rock Ridge. */
export function extensionIds(entries: SuspEntry[]): string[] {
  const out: string[] = [];
  for (const { signature, area, at, length } of entries) {
    if (signature !== 'ER' || length < 8) continue;
    const len = area[at + 4];
    if (8 + len <= length) out.push(area.toString('latin1', at + 8, at + 8 + len));
  }
  return out;
}

export const ROCK_RIDGE_IDS = ['RRIP_1991A', 'IEEE_P1282', 'IEEE_1282'];
