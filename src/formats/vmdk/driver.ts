import { VdiskError } from '../../errors.js';
import type { FormatDriver, ProbeInput } from '../driver.js';
import { COWD_MAGIC, DESCRIPTOR_SIGNATURE, SPARSE_MAGIC } from './constants.js';
import { VMDK_CREATE_OPTIONS, vmdkCreateOptions, writeMonolithicSparse } from './create.js';
import { openVmdk } from './open-image.js';
import { writeStream } from './stream-writer.js';
import { checkVmdk } from './check.js';
import { writeWithExtentFiles } from './split-writer.js';

/** Subformats whose data lives in extent files beside a descriptor file. */
const EXTENT_FILES = new Set(['monolithicFlat', 'twoGbMaxExtentSparse', 'twoGbMaxExtentFlat']);

function probe({ head }: ProbeInput): number {
  const magic = head.readUInt32LE(0);
  if (magic === SPARSE_MAGIC || magic === COWD_MAGIC) return 100;
  return head.toString('latin1', 0, DESCRIPTOR_SIGNATURE.length) === DESCRIPTOR_SIGNATURE ? 100 : 0;
}

export const vmdkDriver: FormatDriver = {
  name: 'vmdk',
  description: "VMware's virtual disk (VMDK): sparse, flat, split and streamOptimized",
  extensions: ['.vmdk'],
  probe,
  open: (file, ctx) => openVmdk(file, ctx),
  createOptions: VMDK_CREATE_OPTIONS,
  async create(file, req) {
    const o = vmdkCreateOptions(req);
    if (EXTENT_FILES.has(o.subformat)) await writeWithExtentFiles(file, o, req, null);
    else if (o.subformat === 'streamOptimized') {
      if (req.backing) throw new VdiskError('UNSUPPORTED', `${req.path}: a streamOptimized VMDK cannot have a parent`);
      await writeStream(file, o, null);
    } else await writeMonolithicSparse(file, o, req);
  },
  async convertFrom(source, file, req, onProgress) {
    const o = vmdkCreateOptions(req);
    // Extent files take their names only when complete, so they are filled here, not by convert's generic copy.
    if (EXTENT_FILES.has(o.subformat)) await writeWithExtentFiles(file, o, req, source, onProgress);
    else if (o.subformat === 'streamOptimized') await writeStream(file, o, source, onProgress);
    else return false;
    return true;
  },
  check: (file, options) => checkVmdk(file, options),
};
