import { VdiskError, corrupt } from '../../errors.js';
import { readExact, type ByteSource } from '../../io/file.js';
import {
  DISK_DIFFERENCING, DISK_FIXED, FOOTER_SIZE, HEADER_SIZE, SECTOR, bitmapSizeOf, roundUp,
} from './constants.js';
import { hasFooterCookie, parseFooter, type Footer } from './footer.js';
import { parseDynamicHeader, type DynamicHeader } from './dynamic-header.js';

/** Where everything of a VHD is, read and checked once at open. */
export interface VpcLayout {
  footer: Footer;
  /** Where the trailing footer is (where the next block goes); for a lost one, the end of the file. */
  footerAt: number;
  /** 512, or 511 for the short footer old writers left. */
  footerLength: number;
  /** Whether the trailing footer is valid (a dynamic disk's copy at 0 may stand in for it). */
  trailingValid: boolean;
  /** The footer copy at offset 0 of a dynamic disk, when valid. */
  headCopy: Footer | null;
  header: DynamicHeader | null;
  virtualSize: number;
  blockSize: number;
  bitmapSize: number;
  /** BAT entries the virtual size needs (at most the header's count): the only ones ever read. */
  entries: number;
  /** First byte after the footer copy, header and BAT: no block may start before it. */
  metadataEnd: number;
  warnings: string[];
}

function tryFooter(file: string, buf: Buffer, where: string): { footer: Footer | null; error: VdiskError | null } {
  if (!hasFooterCookie(buf)) return { footer: null, error: null };
  try {
    return { footer: parseFooter(file, buf, where), error: null };
  } catch (err) {
    return { footer: null, error: err as VdiskError };
  }
}

/** The footer that describes the disk: the trailing one, or a dynamic disk's copy at offset 0. */
async function readFooters(src: ByteSource): Promise<Pick<VpcLayout, 'footer' | 'footerAt' | 'footerLength' | 'trailingValid' | 'headCopy'>> {
  const size = src.size();
  const name = src.path;
  if (size < FOOTER_SIZE - 1) throw new VdiskError('TRUNCATED', `${name}: ${size} bytes, too short for a VHD footer`);
  const tail = Buffer.alloc(FOOTER_SIZE);
  await src.readAt(tail, Math.max(0, size - FOOTER_SIZE));
  let trailing = tryFooter(name, tail, `at offset ${size - FOOTER_SIZE}`);
  let footerLength = FOOTER_SIZE;
  if (!trailing.footer && !trailing.error && size >= FOOTER_SIZE) {
    // Old writers left a 511-byte footer (no saved-state byte) at the end of fixed disks.
    const short = Buffer.alloc(FOOTER_SIZE);
    tail.copy(short, 0, 1);
    const t = tryFooter(name, short, `at offset ${size - FOOTER_SIZE + 1}`);
    if (t.footer || t.error) {
      trailing = t;
      footerLength = FOOTER_SIZE - 1;
    }
  }
  const headBuf = Buffer.alloc(FOOTER_SIZE);
  await src.readAt(headBuf, 0);
  const head = size >= 2 * FOOTER_SIZE ? tryFooter(name, headBuf, 'at offset 0') : { footer: null, error: null };
  const footerAt = size - footerLength;
  if (trailing.footer) {
    const t = trailing.footer;
    const copy = t.diskType !== DISK_FIXED ? head.footer : null;
    return { footer: t, footerAt, footerLength, trailingValid: true, headCopy: copy };
  }
  if (head.footer && head.footer.diskType !== DISK_FIXED) {
    // The trailing footer was overwritten by a block being added (QEMU writes the block's bitmap over
    // it before the new footer): the copy at offset 0 says all the same, and new blocks go at the end.
    return { footer: head.footer, footerAt: roundUp(size, SECTOR), footerLength: FOOTER_SIZE, trailingValid: false, headCopy: head.footer };
  }
  if (trailing.error) throw trailing.error;
  if (head.error) throw head.error;
  if (head.footer) throw corrupt(name, 'a fixed VHD whose footer at the end of the file is missing');
  throw corrupt(name, 'not a VHD image (no "conectix" footer at the end of the file or at offset 0)');
}

export async function readLayout(src: ByteSource): Promise<VpcLayout> {
  const name = src.path;
  const size = src.size();
  const f = await readFooters(src);
  const footer = f.footer;
  const warnings: string[] = [];
  if (f.headCopy && f.trailingValid && f.headCopy.checksum !== footer.checksum) warnings.push('the footer copy at offset 0 differs from the footer at the end');
  if (footer.currentSize < 0) throw corrupt(name, `the VHD footer's current size is too large (${footer.currentSize})`);
  const virtualSize = Math.floor(footer.currentSize / SECTOR) * SECTOR;
  if (footer.diskType === DISK_FIXED) {
    if (virtualSize > f.footerAt) {
      throw new VdiskError('TRUNCATED', `${name}: the fixed VHD's footer says ${virtualSize} bytes of disk, but only ${f.footerAt} precede the footer`);
    }
    return { ...f, header: null, virtualSize, blockSize: 0, bitmapSize: 0, entries: 0, metadataEnd: 0, warnings };
  }
  const at = footer.dataOffset;
  if (at < 0 || at + HEADER_SIZE > size) {
    throw new VdiskError('TRUNCATED', `${name}: the VHD footer puts the dynamic disk header at offset ${at < 0 ? 'none' : at}, past the end of the file (${size} bytes)`);
  }
  const header = parseDynamicHeader(name, await readExact(src, at, HEADER_SIZE, 'dynamic disk header'), at);
  const blockSize = header.blockSize;
  const entries = Math.ceil(virtualSize / blockSize);
  if (entries > header.maxTableEntries) {
    throw corrupt(name, `the BAT has ${header.maxTableEntries} entries of ${blockSize} bytes, too few for a ${virtualSize}-byte disk`);
  }
  if (header.tableOffset + entries * 4 > size) {
    throw new VdiskError('TRUNCATED', `${name}: the BAT (offset ${header.tableOffset}, ${entries} entries) runs past the end of the file (${size} bytes)`);
  }
  if (header.tableOffset < FOOTER_SIZE && entries > 0) throw corrupt(name, `the BAT at offset ${header.tableOffset} overlaps the footer copy`);
  if (footer.diskType === DISK_DIFFERENCING && !header.locators.some((l) => l.code) && !header.parentName) {
    throw corrupt(name, 'a differencing VHD without a parent locator or parent name');
  }
  const metadataEnd = Math.max(at + HEADER_SIZE, roundUp(header.tableOffset + entries * 4, SECTOR));
  return { ...f, header, virtualSize, blockSize, bitmapSize: bitmapSizeOf(blockSize), entries, metadataEnd, warnings };
}
