import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VdiskError } from '../../errors.js';
import type { ByteSource } from '../../io/file.js';
import { SECTOR } from './constants.js';
import type { DynamicHeader, LocatorEntry } from './dynamic-header.js';

/** Locator data longer than this is no path: refused unread. */
const MAX_LOCATOR_BYTES = 64 * 1024;

export interface ParentLocation {
  code: string;
  /** The path as stored. */
  stored: string;
}

/** The parent paths a differencing header's locators hold, decoded (W2ku/W2ru UTF-16LE, Mac X a file URL). */
export async function readLocators(src: ByteSource, header: DynamicHeader): Promise<ParentLocation[]> {
  const out: ParentLocation[] = [];
  for (const l of header.locators) {
    if (!['W2ku', 'W2ru', 'MacX', 'Wi2k', 'Wi2r'].includes(l.code)) continue;
    if (l.dataLength === 0 || l.dataLength > MAX_LOCATOR_BYTES || l.dataOffset < 0 || l.dataOffset + l.dataLength > src.size()) continue;
    const buf = Buffer.alloc(l.dataLength);
    await src.readAt(buf, l.dataOffset);
    const text = (l.code === 'MacX' ? buf.toString('utf8') : buf.toString(l.code.startsWith('W2') ? 'utf16le' : 'latin1')).replace(/\0+$/, '');
    if (text) out.push({ code: l.code, stored: text });
  }
  return out;
}

/** A stored path as a path of this system, relative ones against the child's folder. */
function candidate(child: string, loc: ParentLocation): string | null {
  let p = loc.stored;
  if (loc.code === 'MacX') {
    try {
      p = fileURLToPath(p);
    } catch {
      return null;
    }
  } else if (loc.code.startsWith('W')) {
    // A Windows drive path cannot name a file here; a POSIX one written by vdisk can.
    if (/^[A-Za-z]:[\\/]/.test(p) || p.startsWith('\\\\')) p = p.slice(2);
    p = p.replace(/\\/g, '/');
  }
  if (!p) return null;
  return isAbsolute(p) && loc.code !== 'W2ru' ? p : resolve(dirname(child), p);
}

/**
 * The parent's path: the first locator (relative ones first, which survive moving the pair) that names
 * an existing file; else the header's parent name beside the child. NOT_FOUND names what was tried.
 */
export function findParent(child: string, header: DynamicHeader, locations: ParentLocation[]): string {
  const order = [...locations.filter((l) => l.code === 'W2ru'), ...locations.filter((l) => l.code !== 'W2ru')];
  const tried: string[] = [];
  for (const loc of order) {
    const p = candidate(child, loc);
    if (!p) continue;
    tried.push(p);
    if (existsSync(p)) return p;
  }
  if (header.parentName) {
    const base = header.parentName.replace(/\\/g, '/').split('/').pop() ?? '';
    if (base) {
      const p = join(dirname(child), base);
      tried.push(p);
      if (existsSync(p)) return p;
    }
  }
  throw new VdiskError('NOT_FOUND', `${child}: the differencing image's parent was not found (tried ${tried.join(', ') || 'no locator'})`);
}

/** The locator data a new differencing image records for `parent`: W2ku absolute, W2ru relative. */
export function newLocators(child: string, parent: string): { code: string; data: Buffer }[] {
  const abs = resolve(parent);
  let rel = relative(dirname(resolve(child)), abs).replace(/\//g, '\\');
  if (!rel.startsWith('.')) rel = `.\\${rel}`;
  return [
    { code: 'W2ku', data: Buffer.from(abs, 'utf16le') },
    { code: 'W2ru', data: Buffer.from(rel, 'utf16le') },
  ];
}

/** The locator entries for data laid out from `at` on, each in whole sectors. */
export function placeLocators(locs: { code: string; data: Buffer }[], at: number): { entries: LocatorEntry[]; end: number } {
  const entries: LocatorEntry[] = [];
  for (const l of locs) {
    const space = Math.ceil(l.data.length / SECTOR) * SECTOR;
    // Windows records the space in bytes (the specification says sectors; readers use the length).
    entries.push({ code: l.code, dataSpace: space, dataLength: l.data.length, dataOffset: at });
    at += space;
  }
  return { entries, end: at };
}
