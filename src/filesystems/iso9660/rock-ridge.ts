import { VdiskError } from '../../errors.js';
import type { FsTime } from '../filesystem.js';
import { digitDate, recordingDate } from './dates.js';
import type { Where } from './directory-record.js';
import type { SuspEntry } from './susp.js';

/**
 * Rock Ridge (RRIP 1.12, IEEE P1282) entries, read from a record's SUSP entries: PX (POSIX attributes,
 * 4.1.1), PN (device numbers, 4.1.2), SL (symbolic link, 4.1.3), NM (alternate name, 4.1.4), CL/PL/RE
 * (relocated directories, 4.1.5), TF (time stamps, 4.1.6) and ZF (zisofs, an extension of mkisofs and
 * libisofs). Names and link targets are byte strings; they are shown as UTF-8, as the tools write them.
 */

export interface RockRidge {
  name?: string;
  mode?: number;
  nlink?: number;
  uid?: number;
  gid?: number;
  /** RRIP 1.12 file serial number (PX of 44 bytes). */
  ino?: number;
  rdev?: { major: number; minor: number };
  symlink?: string;
  birthtime?: FsTime;
  mtime?: FsTime;
  atime?: FsTime;
  ctime?: FsTime;
  /** RE: this record is a relocated directory, shown where its CL points instead. */
  relocated: boolean;
  /** CL: this record stands for the directory relocated to this logical block. */
  childLink?: number;
  /** ZF: the data is zisofs-compressed. */
  zisofs?: { algorithm: string; size: number };
  /** Damage worth a warning that still left a usable answer (absent: none). */
  problems?: string[];
}

/** Linux's PATH_MAX: a longer name or link target is not something a writer made. */
const MAX_TEXT = 4096;

/** SL component flags (RRIP 4.1.3.1). */
const SL_CONTINUE = 0x01;
const SL_CURRENT = 0x02;
const SL_PARENT = 0x04;
const SL_ROOT = 0x08;

/** NM flags (RRIP 4.1.4). */
const NM_CONTINUE = 0x01;
const NM_CURRENT = 0x02;
const NM_PARENT = 0x04;

/** TF flags (RRIP 4.1.6): which stamps follow, in this order, and whether they are 17-byte. */
const TF_LONG_FORM = 0x80;

/** Linux's dev_t encoding for a PN whose high word is zero: 12 bits of major, 20 of minor. */
function decodeDev(high: number, low: number): { major: number; minor: number } {
  if (high !== 0) return { major: high, minor: low };
  return { major: (low >>> 8) & 0xfff, minor: (low & 0xff) | ((low >>> 12) & 0xfff00) };
}

/**
 * The Rock Ridge attributes of a record's entries. Read straight from the areas the entries lie in:
 * a tree of 20,000 files paid for a view, a text and an array per entry when they were made up front.
 */
export function readRockRidge(entries: SuspEntry[], where: Where): RockRidge {
  const rr: RockRidge = { relocated: false };
  // A name is almost always one NM entry: decoded from the area; continued ones are gathered first.
  let nameParts: Buffer[] | null = null;
  let nameLength = 0;
  let nameDone = false;
  let link: string[] | null = null;
  let linkLength = 0;
  let slashPending = false;
  for (const entry of entries) {
    const { area: e, at: p, length: len } = entry;
    switch (entry.signature) {
      case 'PX':
        if (len < 36) break;
        rr.mode = e.readUInt32LE(p + 4);
        rr.nlink = e.readUInt32LE(p + 12);
        rr.uid = e.readUInt32LE(p + 20);
        rr.gid = e.readUInt32LE(p + 28);
        if (len >= 44) rr.ino = e.readUInt32LE(p + 36);
        break;
      case 'PN':
        if (len >= 20) rr.rdev = decodeDev(e.readUInt32LE(p + 4), e.readUInt32LE(p + 12));
        break;
      case 'NM': {
        if (len < 5 || nameDone) break;
        const flags = e[p + 4];
        if (flags & (NM_CURRENT | NM_PARENT)) break;
        nameLength += len - 5;
        if (nameLength > MAX_TEXT) throw new VdiskError('CORRUPT', `${where}: Rock Ridge name longer than ${MAX_TEXT} bytes`);
        if (!(flags & NM_CONTINUE)) nameDone = true;
        if (nameDone && nameParts === null) rr.name = e.toString('utf8', p + 5, p + len);
        else (nameParts ??= []).push(e.subarray(p + 5, p + len));
        break;
      }
      case 'SL': {
        if (len < 5) break;
        link ??= [];
        // Components: flags, length, content. A component without CONTINUE is followed by a slash.
        let pos = 5;
        while (pos + 2 <= len) {
          const flags = e[p + pos];
          const clen = e[p + pos + 1];
          let from = p + pos + 2;
          let to = from + clen;
          let last = false;
          if (pos + 2 + clen > len) {
            // genisoimage writes the length of a long SL entry modulo 256; xorriso and isoinfo then read
            // the component on from the area and stop there, and so do we (the rest cannot be found).
            from = Math.min(from, entry.end);
            to = Math.min(to, entry.end);
            (rr.problems ??= []).push(`${where}: Rock Ridge SL component overruns its entry (a length byte that wrapped past 255?); symbolic link target cut short`);
            last = true;
          }
          pos += 2 + clen;
          if (flags & SL_ROOT) {
            link.push('/');
            linkLength += 1;
            slashPending = false;
            continue;
          }
          if (slashPending) link.push('/');
          const text = flags & SL_CURRENT ? '.' : flags & SL_PARENT ? '..' : e.toString('utf8', from, to);
          linkLength += text.length + 1;
          if (linkLength > MAX_TEXT) throw new VdiskError('CORRUPT', `${where}: Rock Ridge symbolic link longer than ${MAX_TEXT} bytes`);
          link.push(text);
          slashPending = !(flags & SL_CONTINUE);
          if (last) break;
        }
        break;
      }
      case 'TF': {
        if (len < 5) break;
        const flags = e[p + 4];
        const size = flags & TF_LONG_FORM ? 17 : 7;
        let pos = 5;
        for (let bit = 0; bit < 7; bit++) {
          if (!(flags & (1 << bit))) continue;
          if (pos + size > len) break;
          const t = size === 17 ? digitDate(e, p + pos) : recordingDate(e, p + pos);
          pos += size;
          if (!t) continue;
          if (bit === 0) rr.birthtime = t;
          else if (bit === 1) rr.mtime = t;
          else if (bit === 2) rr.atime = t;
          else if (bit === 3) rr.ctime = t;
        }
        break;
      }
      case 'CL':
        if (len >= 12) rr.childLink = e.readUInt32LE(p + 4);
        break;
      case 'RE':
        rr.relocated = true;
        break;
      case 'ZF':
        if (len >= 16) rr.zisofs = { algorithm: e.toString('latin1', p + 4, p + 6), size: e.readUInt32LE(p + 8) };
        break;
    }
  }
  if (nameParts !== null) rr.name = Buffer.concat(nameParts).toString('utf8');
  if (link !== null) rr.symlink = link.join('');
  return rr;
}
