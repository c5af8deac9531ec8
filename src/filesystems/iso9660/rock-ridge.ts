import { VdiskError } from '../../errors.js';
import type { FsTime } from '../filesystem.js';
import { digitDate, recordingDate } from './dates.js';
import { entryTail, type SuspEntry } from './susp.js';

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
  /** Damage worth a warning that still left a usable answer. */
  problems: string[];
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

function appendBounded(parts: Buffer[], total: { n: number }, b: Buffer, what: string, where: string): void {
  total.n += b.length;
  if (total.n > MAX_TEXT) throw new VdiskError('CORRUPT', `${where}: Rock Ridge ${what} longer than ${MAX_TEXT} bytes`);
  parts.push(b);
}

/** Linux's dev_t encoding for a PN whose high word is zero: 12 bits of major, 20 of minor. */
function decodeDev(high: number, low: number): { major: number; minor: number } {
  if (high !== 0) return { major: high, minor: low };
  return { major: (low >>> 8) & 0xfff, minor: (low & 0xff) | ((low >>> 12) & 0xfff00) };
}

export function readRockRidge(entries: SuspEntry[], where: string): RockRidge {
  const rr: RockRidge = { relocated: false, problems: [] };
  const nameParts: Buffer[] = [];
  const nameTotal = { n: 0 };
  let nameDone = false;
  const link: string[] = [];
  const linkTotal = { n: 0 };
  let slashPending = false;
  let sawLink = false;
  for (const entry of entries) {
    const e = entry.bytes;
    switch (entry.signature) {
      case 'PX':
        if (e.length < 36) break;
        rr.mode = e.readUInt32LE(4);
        rr.nlink = e.readUInt32LE(12);
        rr.uid = e.readUInt32LE(20);
        rr.gid = e.readUInt32LE(28);
        if (e.length >= 44) rr.ino = e.readUInt32LE(36);
        break;
      case 'PN':
        if (e.length >= 20) rr.rdev = decodeDev(e.readUInt32LE(4), e.readUInt32LE(12));
        break;
      case 'NM': {
        if (e.length < 5 || nameDone) break;
        const flags = e[4];
        if (flags & (NM_CURRENT | NM_PARENT)) break;
        appendBounded(nameParts, nameTotal, e.subarray(5), 'name', where);
        if (!(flags & NM_CONTINUE)) nameDone = true;
        break;
      }
      case 'SL': {
        if (e.length < 5) break;
        sawLink = true;
        // Components: flags, length, content. A component without CONTINUE is followed by a slash.
        let pos = 5;
        while (pos + 2 <= e.length) {
          const flags = e[pos];
          const len = e[pos + 1];
          let content = e.subarray(pos + 2, pos + 2 + len);
          let last = false;
          if (pos + 2 + len > e.length) {
            // genisoimage writes the length of a long SL entry modulo 256; xorriso and isoinfo then read
            // the component on from the area and stop there, and so do we (the rest cannot be found).
            const tail = entryTail(entry);
            content = tail.subarray(Math.min(pos + 2, tail.length), Math.min(pos + 2 + len, tail.length));
            rr.problems.push(`${where}: Rock Ridge SL component overruns its entry (a length byte that wrapped past 255?); symbolic link target cut short`);
            last = true;
          }
          pos += 2 + len;
          if (flags & SL_ROOT) {
            link.push('/');
            linkTotal.n += 1;
            slashPending = false;
            continue;
          }
          if (slashPending) link.push('/');
          const text = flags & SL_CURRENT ? '.' : flags & SL_PARENT ? '..' : content.toString('utf8');
          linkTotal.n += text.length + 1;
          if (linkTotal.n > MAX_TEXT) throw new VdiskError('CORRUPT', `${where}: Rock Ridge symbolic link longer than ${MAX_TEXT} bytes`);
          link.push(text);
          slashPending = !(flags & SL_CONTINUE);
          if (last) break;
        }
        break;
      }
      case 'TF': {
        if (e.length < 5) break;
        const flags = e[4];
        const size = flags & TF_LONG_FORM ? 17 : 7;
        let pos = 5;
        for (let bit = 0; bit < 7; bit++) {
          if (!(flags & (1 << bit))) continue;
          if (pos + size > e.length) break;
          const t = size === 17 ? digitDate(e, pos) : recordingDate(e, pos);
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
        if (e.length >= 12) rr.childLink = e.readUInt32LE(4);
        break;
      case 'RE':
        rr.relocated = true;
        break;
      case 'ZF':
        if (e.length >= 16) rr.zisofs = { algorithm: e.toString('latin1', 4, 6), size: e.readUInt32LE(8) };
        break;
    }
  }
  // One NM entry (nearly every name): decoded in place, without a concatenated copy.
  if (nameParts.length) rr.name = (nameParts.length === 1 ? nameParts[0] : Buffer.concat(nameParts)).toString('utf8');
  if (sawLink) rr.symlink = link.join('');
  return rr;
}
