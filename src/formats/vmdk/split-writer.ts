import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { VdiskError } from '../../errors.js';
import type { PositionalFile } from '../../io/file.js';
import { ReplacingOutput } from '../../io/output.js';
import type { CreateRequest } from '../driver.js';
import type { DiskImage } from '../image.js';
import { MAX_EXTENTS, SECTOR } from './constants.js';
import { flatExtentPath, parentOf, writeEmptySparse, type VmdkCreateOptions } from './create.js';
import { parseDescriptor, serializeDescriptor, type ExtentLine } from './descriptor.js';
import { FlatExtent } from './extent.js';
import { SparseExtent } from './sparse-extent.js';
import { VmdkImage, type PlacedExtent } from './vmdk-image.js';
import { fillImage } from '../copy-into.js';

/** The most a piece of a split disk holds, as VMware and QEMU split them: 2 GiB. */
const PIECE_SECTORS = (2 * 1024 ** 3) / SECTOR;

interface Piece {
  /** Where the piece's file goes, and its name in the descriptor (beside the descriptor). */
  path: string;
  name: string;
  sectors: number;
}

/** The pieces of a split disk, named as QEMU names them: "disk.vmdk" -> "disk-s001.vmdk" (sparse) or "disk-f001.vmdk" (flat). */
export function splitPieces(path: string, capacitySectors: number, flat: boolean): Piece[] {
  const base = basename(path);
  const dot = base.lastIndexOf('.');
  const [prefix, postfix] = dot > 0 ? [base.slice(0, dot), base.slice(dot)] : [base, ''];
  const out: Piece[] = [];
  for (let at = 0, i = 1; at < capacitySectors; at += PIECE_SECTORS, i++) {
    const name = `${prefix}-${flat ? 'f' : 's'}${String(i).padStart(3, '0')}${postfix}`;
    out.push({ path: join(dirname(path), name), name, sectors: Math.min(PIECE_SECTORS, capacitySectors - at) });
  }
  return out;
}

/** The extent files of a disk described by a descriptor file of its own. */
function piecesOf(path: string, o: VmdkCreateOptions): Piece[] {
  if (o.subformat !== 'monolithicFlat') return splitPieces(path, o.capacitySectors, o.subformat === 'twoGbMaxExtentFlat');
  const flat = flatExtentPath(path);
  return [{ path: flat, name: basename(flat), sectors: o.capacitySectors }];
}

/**
 * Writes a disk described by a descriptor file of its own (monolithicFlat, twoGbMaxExtentSparse,
 * twoGbMaxExtentFlat): the descriptor into `file`, each piece
 * into a file of its own beside it, holding `source` when there is one (convert). Every piece is
 * written under a temporary name (as the descriptor is) and takes its name only once all are
 * complete and durable, just before the descriptor takes its own; a failure before then leaves none
 * of them. An existing file with a piece's name is refused before anything is made, never replaced:
 * vdisk did not make it.
 */
export async function writeWithExtentFiles(
  file: PositionalFile, o: VmdkCreateOptions, req: CreateRequest, source: DiskImage | null,
  onProgress?: (done: number, total: number) => void,
): Promise<void> {
  const flat = o.subformat !== 'twoGbMaxExtentSparse';
  if (flat && req.backing) throw new VdiskError('UNSUPPORTED', `${req.path}: a ${o.subformat} VMDK cannot have a parent`);
  if (o.capacitySectors === 0 && o.subformat !== 'monolithicFlat') throw new VdiskError('USAGE', `${req.path}: a split VMDK of 0 bytes would have no extents`);
  const pieces = piecesOf(req.path, o);
  // Readers (vdisk's too) refuse descriptors with more extents: such a disk could not be opened.
  if (pieces.length > MAX_EXTENTS) throw new VdiskError('USAGE', `${req.path}: a ${o.subformat} VMDK of ${pieces.length} pieces of 2 GiB; at most ${MAX_EXTENTS} (${MAX_EXTENTS * 2} GiB)`);
  for (const p of pieces) {
    if (existsSync(p.path)) throw new VdiskError('USAGE', `${p.path}: already exists; vdisk does not replace an extent file it did not make (remove it first)`);
  }
  const parent = parentOf(req);
  const extents: ExtentLine[] = pieces.map((p) => ({ access: 'RW', sectors: p.sectors, type: flat ? 'FLAT' : 'SPARSE', file: p.name, offset: 0 }));
  const text = serializeDescriptor({
    cid: o.cid,
    createType: o.subformat,
    extents,
    capacitySectors: o.capacitySectors,
    adapterType: o.adapterType,
    hwVersion: o.hwVersion,
    ...(parent ? { parentCid: parent.cid, parentFileNameHint: parent.hint } : {}),
  });
  const outs: ReplacingOutput[] = [];
  try {
    for (const p of pieces) {
      const out = await ReplacingOutput.begin(p.path, null);
      outs.push(out);
      out.file.cache = file.cache;
      if (flat) await out.file.truncate(p.sectors * SECTOR);
      else await writeEmptySparse(out.file, p.sectors, Buffer.alloc(0));
      // An empty disk's pieces are complete now: closed at once, thousands of them hold no descriptors.
      if (!source) await out.file.close();
    }
    if (source) await fillPieces(file, text, pieces, outs.map((out) => out.file), flat, source, onProgress);
    if (source) {
      for (const out of outs) {
        await out.file.flush();
        await out.file.close();
      }
    }
    await file.writeAt(Buffer.from(text, 'utf8'), 0);
    await file.flush();
    for (const out of outs) await out.commit();
  } catch (err) {
    for (const out of outs) await out.abort();
    throw err;
  }
}

/** Copies `source` into the new pieces, through an image made of them (written where they lie now, under their temporary names). */
async function fillPieces(
  file: PositionalFile, text: string, pieces: Piece[], files: PositionalFile[], flat: boolean, source: DiskImage,
  onProgress?: (done: number, total: number) => void,
): Promise<void> {
  const placed: PlacedExtent[] = [];
  let start = 0;
  for (let i = 0; i < pieces.length; i++) {
    const length = pieces[i].sectors * SECTOR;
    placed.push({ start, length, extent: flat ? new FlatExtent(files[i], 0) : await SparseExtent.open(files[i]), type: flat ? 'FLAT' : 'SPARSE' });
    start += length;
  }
  const image = new VmdkImage(file, parseDescriptor(file.path, text), placed, files, null);
  await fillImage(source, image, onProgress);
}
