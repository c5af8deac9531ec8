import type { PositionalFile } from '../../io/file.js';
import { DISK_FIXED, FOOTER_SIZE, MiB, SECTOR } from './constants.js';
import { serializeFooter, type Footer } from './footer.js';
import type { Bat } from './bat.js';

const COPY = 4 * MiB;

/** Copies `length` bytes of the file from `from` to `to` (ranges that do not overlap), in pieces. */
export async function copyWithin(file: PositionalFile, from: number, to: number, length: number): Promise<void> {
  const buf = Buffer.alloc(Math.min(COPY, length));
  for (let at = 0; at < length; at += buf.length) {
    const piece = buf.subarray(0, Math.min(buf.length, length - at));
    await file.readAt(piece, from + at);
    await file.writeAt(piece, to + at);
  }
}

/** Writes zeros over [at, at+length) of the file, in pieces. */
export async function zeroRange(file: PositionalFile, at: number, length: number): Promise<void> {
  const zeros = Buffer.alloc(Math.min(COPY, length));
  for (let o = 0; o < length; o += zeros.length) await file.writeAt(zeros.subarray(0, Math.min(zeros.length, length - o)), at + o);
}

/**
 * Writes a changed footer: the trailing one at `at` first, flushed (readers trust it over the copy),
 * then a dynamic disk's copy at offset 0, flushed. Cut off between the two, the image opens as the
 * trailing footer says, and check reports (and -r all repairs) the copy that differs.
 */
export async function writeFooters(file: PositionalFile, footer: Footer, at: number): Promise<void> {
  const buf = serializeFooter(footer);
  await file.writeAt(buf, at);
  await file.flush();
  if (footer.diskType !== DISK_FIXED) {
    await file.writeAt(buf, 0);
    await file.flush();
  }
}

/**
 * Makes `end` the file's end: the footer is written there and flushed before anything below it
 * changes (the old trailing footer still valid until then), then the file is cut after it.
 */
export async function endFileAt(file: PositionalFile, footer: Footer, end: number): Promise<void> {
  await file.writeAt(serializeFooter(footer), end);
  await file.flush();
  if (end + FOOTER_SIZE < file.size()) {
    await file.truncate(end + FOOTER_SIZE);
    await file.flush();
  }
}

/**
 * Moves a stored block (BAT entry `index`, `blockBytes` of bitmap and data at `from`) to `to`, the
 * append point, crash-safe by order as a new block is added: the footer goes to the new end first,
 * then the copy, flushed, and only then the BAT entry (4 bytes), flushed. Cut off before the entry,
 * the block is still read at its old place; after, at its new one; the two hold the same bytes.
 * Returns the new append point.
 */
export async function moveBlockToEnd(file: PositionalFile, bat: Bat, footer: Footer, index: number, from: number, to: number, blockBytes: number): Promise<number> {
  const end = to + blockBytes;
  await file.writeAt(serializeFooter(footer), end);
  await file.flush();
  await copyWithin(file, from, to, blockBytes);
  await file.flush();
  await bat.set(file, index, to / SECTOR);
  await file.flush();
  return end;
}
