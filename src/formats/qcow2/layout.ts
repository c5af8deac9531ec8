import { VdiskError, corrupt } from '../../errors.js';
import { readExact, type ByteSource } from '../../io/file.js';
import { INCOMPAT_DATA_FILE, INCOMPAT_EXTL2, MAX_L1_BYTES, V2_HEADER_LENGTH, V3_HEADER_LENGTH, entryOffset } from './constants.js';
import { parseExtensions, type Qcow2Extensions } from './extensions.js';
import { parseHeader, type Qcow2Header } from './header.js';

/** What an open needs from the first cluster and the L1 table, every field checked against the file. */
export interface Qcow2Layout {
  header: Qcow2Header;
  ext: Qcow2Extensions;
  backingName: string | null;
  clusterSize: number;
  clusterBits: number;
  extended: boolean;
  /** Entries per L2 table (8-byte entries, or 16-byte ones with extended L2). */
  l2Entries: number;
  /** L1 entries: L2 table offsets (0: none) and their COPIED flags. */
  l1: Float64Array;
  l1Copied: Uint8Array;
}

/** L1 entries a disk of `size` bytes needs. */
export function l1EntriesFor(size: number, clusterSize: number, extended: boolean): number {
  return Math.ceil(size / (clusterSize * (clusterSize / (extended ? 16 : 8))));
}

export async function readLayout(src: ByteSource): Promise<Qcow2Layout> {
  const path = src.path;
  if (src.size() < V2_HEADER_LENGTH) throw new VdiskError('TRUNCATED', `${path}: file of ${src.size()} bytes ends inside the qcow2 header`);
  const first = Buffer.alloc(V3_HEADER_LENGTH + 8);
  await src.readAt(first, 0);
  const bits = first.readUInt32BE(20);
  // The header cluster, read whole only when the file holds it: extensions and the backing name live there.
  const cs = bits >= 9 && bits <= 21 ? 2 ** bits : 512;
  const cluster0 = Buffer.alloc(cs);
  await src.readAt(cluster0, 0);
  const version = first.readUInt32BE(4);
  const extStart = version === 3 ? first.readUInt32BE(100) : V2_HEADER_LENGTH;
  let names: Qcow2Extensions['featureNames'] = new Map();
  try {
    names = parseExtensions(path, cluster0, extStart, cs).featureNames;
  } catch {
    // The header's own checks will say what is wrong.
  }
  const header = parseHeader(path, first, (bit) => names.get(`incompatible:${bit}`));
  if (src.size() < header.headerLength) throw new VdiskError('TRUNCATED', `${path}: file of ${src.size()} bytes ends inside the qcow2 header`);
  const extEnd = header.backingFileOffset > header.headerLength ? header.backingFileOffset : cs;
  const ext = parseExtensions(path, cluster0, header.headerLength, extEnd);
  if ((header.incompatible & INCOMPAT_DATA_FILE) && !ext.dataFile) throw corrupt(path, 'qcow2 image needs an external data file but names none');
  const backingName = header.backingFileOffset !== 0 ? cluster0.toString('utf8', header.backingFileOffset, header.backingFileOffset + header.backingFileSize) : null;
  if (header.backingFileOffset !== 0 && header.backingFileOffset + header.backingFileSize > src.size()) {
    throw new VdiskError('TRUNCATED', `${path}: the qcow2 backing file name runs past the end of the file`);
  }
  const extended = (header.incompatible & INCOMPAT_EXTL2) !== 0;
  const needed = l1EntriesFor(header.size, cs, extended);
  if (header.l1Size < needed) throw corrupt(path, `qcow2 L1 table of ${header.l1Size} entries is too small for a ${header.size}-byte disk (${needed} needed)`);
  if (header.l1Size * 8 > MAX_L1_BYTES) throw corrupt(path, `qcow2 L1 table of ${header.l1Size} entries is above QEMU's 32 MiB limit`);
  if (header.l1Size > 0 && header.l1TableOffset + header.l1Size * 8 > src.size()) {
    throw new VdiskError('TRUNCATED', `${path}: the qcow2 L1 table (${header.l1Size * 8} bytes at ${header.l1TableOffset}) runs past the end of the file (${src.size()} bytes)`);
  }
  if (header.l1Size > 0 && header.l1TableOffset === 0) throw corrupt(path, 'qcow2 L1 table at offset 0, over the header');
  // Only the entries the disk uses: more may be stored (a shrunk image), and are not looked at.
  const l1Bytes = await readExact(src, header.l1TableOffset, needed * 8, 'qcow2 L1 table');
  const l1 = new Float64Array(needed);
  const l1Copied = new Uint8Array(needed);
  for (let i = 0; i < needed; i++) {
    l1[i] = entryOffset(l1Bytes, i * 8);
    l1Copied[i] = l1Bytes[i * 8] >>> 7;
  }
  return { header, ext, backingName, clusterSize: cs, clusterBits: header.clusterBits, extended, l2Entries: cs / (extended ? 16 : 8), l1, l1Copied };
}

/** A name from the header, resolved as QEMU does: relative to the directory of the image naming it. */
export function besideImage(imagePath: string, name: string): string {
  if (name.startsWith('/') || /^[a-z]+:/i.test(name)) return name;
  const slash = imagePath.lastIndexOf('/');
  return slash < 0 ? name : imagePath.slice(0, slash + 1) + name;
}
