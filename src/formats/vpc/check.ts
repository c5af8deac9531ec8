import type { PositionalFile } from '../../io/file.js';
import { VdiskError } from '../../errors.js';
import type { DriverCheckOptions } from '../driver.js';
import type { CheckReport, Finding } from '../../ops/check-report.js';
import { Bat } from './bat.js';
import { DISK_DIFFERENCING, DISK_FIXED, FOOTER_SIZE, HEADER_SIZE, SECTOR, bitmapSizeOf, roundUp } from './constants.js';
import { footerChecksumOk, hasFooterCookie, parseFooter, type Footer } from './footer.js';
import { parseDynamicHeader, type DynamicHeader } from './dynamic-header.js';

const MAX_LISTED = 100;

/** What one look at a VHD found, with what a repair needs. */
interface Examination {
  findings: Finding[];
  unlisted: number;
  corruptions: number;
  leaks: number;
  /** The good footer's bytes (the trailing one, else the copy at 0), when there is one. */
  good: Buffer | null;
  footer: Footer | null;
  /** Rewrite the copy at offset 0 from `good`. */
  fixCopy: boolean;
  /** Write `good` at `dataEnd` and cut the file there: a lost trailing footer, or leaked space at the end. */
  fixEnd: 'corruption' | 'leak' | null;
  dataEnd: number;
  totalBlocks?: number;
  allocatedBlocks?: number;
}

function finding(ex: Examination, f: Finding): void {
  if (f.severity === 'corruption') ex.corruptions++;
  else if (f.severity === 'leak') ex.leaks++;
  if (ex.findings.length < MAX_LISTED) ex.findings.push(f);
  else ex.unlisted++;
}

async function read(file: PositionalFile, at: number, n: number): Promise<Buffer> {
  const b = Buffer.alloc(n);
  await file.readAt(b, at);
  return b;
}

function tryParse(file: PositionalFile, buf: Buffer, where: string): { footer: Footer | null; error: string | null } {
  if (!hasFooterCookie(buf)) return { footer: null, error: `no footer ("conectix") ${where}` };
  try {
    return { footer: parseFooter(file.path, buf, where), error: null };
  } catch (err) {
    return { footer: null, error: (err as Error).message.replace(`${file.path}: `, '') };
  }
}

async function examine(file: PositionalFile): Promise<Examination> {
  const ex: Examination = { findings: [], unlisted: 0, corruptions: 0, leaks: 0, good: null, footer: null, fixCopy: false, fixEnd: null, dataEnd: 0 };
  const size = file.size();
  if (size < FOOTER_SIZE) throw new VdiskError('TRUNCATED', `${file.path}: ${size} bytes, too short for a VHD footer`);
  const tailAt = size - FOOTER_SIZE;
  const tailBuf = await read(file, tailAt, FOOTER_SIZE);
  let trailing = tryParse(file, tailBuf, `at offset ${tailAt}`);
  let tailGood: Buffer = tailBuf;
  let footerAt = tailAt;
  if (!trailing.footer && !hasFooterCookie(tailBuf) && footerChecksumOk(Buffer.concat([tailBuf.subarray(1), Buffer.alloc(1)]))) {
    tailGood = Buffer.concat([tailBuf.subarray(1), Buffer.alloc(1)]);
    trailing = tryParse(file, tailGood, `at offset ${tailAt + 1}`);
    footerAt = tailAt + 1;
  }
  const headBuf = await read(file, 0, FOOTER_SIZE);
  const head = size >= 2 * FOOTER_SIZE ? tryParse(file, headBuf, 'at offset 0') : { footer: null, error: 'none' };
  const fixedTrailing = trailing.footer?.diskType === DISK_FIXED;
  if (trailing.footer) {
    ex.good = tailGood;
    ex.footer = trailing.footer;
  } else if (head.footer && head.footer.diskType !== DISK_FIXED) {
    ex.good = headBuf;
    ex.footer = head.footer;
    footerAt = size;
    finding(ex, { severity: 'corruption', structure: 'footer', offset: tailAt, message: `the footer at the end of the file is lost (${trailing.error}); the copy at offset 0 is good`, repair: 'rewrite-footer' });
  } else {
    finding(ex, { severity: 'corruption', structure: 'footer', offset: tailAt, message: `no valid VHD footer: ${trailing.error}; at offset 0: ${head.error}` });
    return ex;
  }
  const footer = ex.footer as Footer;
  if (footer.currentSize < 0) {
    finding(ex, { severity: 'corruption', structure: 'footer', offset: footerAt, message: 'the current size is past any disk (over 2^53 bytes)' });
    return ex;
  }
  const vs = Math.floor(Math.max(0, footer.currentSize) / SECTOR) * SECTOR;
  if (footer.diskType === DISK_FIXED) {
    ex.dataEnd = vs;
    if (vs > footerAt) finding(ex, { severity: 'corruption', structure: 'footer', offset: footerAt, message: `the footer says ${vs} bytes of disk, but only ${footerAt} precede it` });
    else if (vs < footerAt) finding(ex, { severity: 'leak', structure: 'data', offset: vs, message: `${footerAt - vs} bytes between the disk's end and the footer belong to nothing`, repair: 'truncate' });
    if (vs < footerAt) ex.fixEnd = 'leak';
    return ex;
  }
  if (!fixedTrailing && trailing.footer) {
    if (!head.footer) {
      finding(ex, { severity: 'corruption', structure: 'footer copy', offset: 0, message: `the footer copy at offset 0 is bad (${head.error})`, repair: 'rewrite-footer' });
      ex.fixCopy = true;
    } else if (!headBuf.equals(tailGood)) {
      finding(ex, { severity: 'corruption', structure: 'footer copy', offset: 0, message: 'the footer copy at offset 0 differs from the footer at the end', repair: 'rewrite-footer' });
      ex.fixCopy = true;
    }
  }
  const hAt = footer.dataOffset;
  if (hAt < 0 || hAt + HEADER_SIZE > size) {
    finding(ex, { severity: 'corruption', structure: 'dynamic header', offset: Math.max(0, hAt), message: `the footer puts the dynamic header at ${hAt}, outside the file` });
    return ex;
  }
  let header: DynamicHeader;
  try {
    header = parseDynamicHeader(file.path, await read(file, hAt, HEADER_SIZE), hAt);
  } catch (err) {
    finding(ex, { severity: 'corruption', structure: 'dynamic header', offset: hAt, message: (err as Error).message.replace(`${file.path}: `, '') });
    return ex;
  }
  const entries = Math.ceil(vs / header.blockSize);
  ex.totalBlocks = entries;
  if (footer.diskType === DISK_DIFFERENCING && !header.locators.some((l) => l.code) && !header.parentName) {
    finding(ex, { severity: 'corruption', structure: 'dynamic header', offset: hAt, message: 'a differencing VHD without a parent locator or parent name' });
  }
  if (entries > header.maxTableEntries || header.tableOffset + entries * 4 > size) {
    finding(ex, { severity: 'corruption', structure: 'BAT', offset: header.tableOffset, message: `the BAT (${header.maxTableEntries} entries at ${header.tableOffset}) does not cover the disk inside the file` });
    return ex;
  }
  // File space in use, as [start, end) ranges: the footer copy, header, BAT, locator data, blocks.
  const used: { start: number; end: number; what: string; entry?: number }[] = [
    { start: 0, end: FOOTER_SIZE, what: 'footer copy' },
    { start: hAt, end: hAt + HEADER_SIZE, what: 'dynamic header' },
    { start: header.tableOffset, end: roundUp(header.tableOffset + Math.min(header.maxTableEntries * 4, size), SECTOR), what: 'BAT' },
  ];
  for (const l of header.locators) {
    if (l.code && l.dataOffset >= 0 && l.dataLength > 0 && l.dataOffset + l.dataLength <= size) {
      used.push({ start: l.dataOffset, end: roundUp(l.dataOffset + l.dataLength, SECTOR), what: `parent locator ${l.code}` });
    }
  }
  const metaEnd = Math.max(...used.map((u) => u.end));
  const blockBytes = bitmapSizeOf(header.blockSize) + header.blockSize;
  const bat = new Bat(file, header.tableOffset, entries);
  let allocated = 0;
  const blocks: { start: number; end: number; what: string; entry: number }[] = [];
  await bat.forEachAllocated((i, sector) => {
    allocated++;
    const start = sector * SECTOR;
    const entryAt = header.tableOffset + i * 4;
    if (start + blockBytes > footerAt) {
      finding(ex, { severity: 'corruption', structure: 'BAT', offset: entryAt, entry: i, message: `block ${i} at ${start}..${start + blockBytes} runs past the footer at ${footerAt}` });
    } else if (used.some((u) => start < u.end && u.start < start + blockBytes)) {
      const u = used.find((x) => start < x.end && x.start < start + blockBytes)!;
      finding(ex, { severity: 'corruption', structure: 'BAT', offset: entryAt, entry: i, message: `block ${i} at ${start} overlaps the ${u.what}` });
    } else {
      blocks.push({ start, end: start + blockBytes, what: `block ${i}`, entry: i });
    }
  });
  ex.allocatedBlocks = allocated;
  blocks.sort((a, b) => a.start - b.start);
  let end = metaEnd;
  for (let k = 0; k < blocks.length; k++) {
    const b = blocks[k];
    if (k > 0 && b.start < blocks[k - 1].end) {
      finding(ex, { severity: 'corruption', structure: 'BAT', offset: header.tableOffset + b.entry * 4, entry: b.entry, message: `${b.what} at ${b.start} overlaps ${blocks[k - 1].what}` });
      continue;
    }
    if (b.start > end) finding(ex, { severity: 'leak', structure: 'data', offset: end, message: `${b.start - end} bytes at ${end} belong to no block` });
    end = Math.max(end, b.end);
  }
  ex.dataEnd = end;
  if (end < footerAt && footerAt <= size) {
    finding(ex, { severity: 'leak', structure: 'data', offset: end, message: `${footerAt - end} bytes at ${end}, before the footer, belong to no block`, repair: 'truncate' });
    ex.fixEnd = 'leak';
  }
  if (!trailing.footer) ex.fixEnd = 'corruption';
  return ex;
}

function report(file: string, ex: Examination, fixed: { corruptions: number; leaks: number }, size: number): CheckReport {
  return {
    filename: file,
    format: 'vpc',
    'check-errors': 0,
    corruptions: ex.corruptions,
    leaks: ex.leaks,
    'corruptions-fixed': fixed.corruptions,
    'leaks-fixed': fixed.leaks,
    'image-end-offset': size,
    ...(ex.totalBlocks !== undefined ? { 'total-blocks': ex.totalBlocks, 'allocated-blocks': ex.allocatedBlocks } : {}),
    findings: ex.findings,
    ...(ex.unlisted ? { 'unlisted-findings': ex.unlisted } : {}),
  };
}

/**
 * `check` of a VHD: the footers and their checksums, the dynamic header, every BAT entry (inside the
 * file, clear of the metadata and of each other) and leaked space. Repairs what is certain: a bad
 * footer copy from the trailing footer, a lost trailing footer from the copy, leaked space at the end
 * (the footer is written at the end of the last block, then the file is cut after it).
 */
export async function checkVpc(file: PositionalFile, options: DriverCheckOptions): Promise<CheckReport> {
  const before = await examine(file);
  const repair = options.repair;
  if (repair === 'none' || !before.good) return report(file.path, before, { corruptions: 0, leaks: 0 }, file.size());
  let changed = false;
  if (repair === 'all' && before.fixCopy) {
    await file.writeAt(before.good, 0);
    await file.flush();
    changed = true;
  }
  if (before.fixEnd === 'corruption' ? repair === 'all' : before.fixEnd === 'leak') {
    // The footer first, then the cut: cut off between the two, the file still ends in a valid footer
    // (the old one) or is the same disk with a leak.
    const at = Math.ceil(before.dataEnd / SECTOR) * SECTOR;
    const foot = Buffer.alloc(FOOTER_SIZE);
    before.good.copy(foot);
    await file.writeAt(foot, at);
    await file.flush();
    await file.truncate(at + FOOTER_SIZE);
    await file.flush();
    changed = true;
  }
  if (!changed) return report(file.path, before, { corruptions: 0, leaks: 0 }, file.size());
  const after = await examine(file);
  const fixedKeys = new Set(after.findings.map((f) => `${f.structure}@${f.offset}`));
  const findings = before.findings.map((f) => (f.repair ? { ...f, fixed: !fixedKeys.has(`${f.structure}@${f.offset}`) } : f));
  const r = report(file.path, after, {
    corruptions: Math.max(0, before.corruptions - after.corruptions),
    leaks: Math.max(0, before.leaks - after.leaks),
  }, file.size());
  return { ...r, findings: [...findings, ...after.findings.filter((f) => !before.findings.some((b) => b.structure === f.structure && b.offset === f.offset))].slice(0, MAX_LISTED) };
}
