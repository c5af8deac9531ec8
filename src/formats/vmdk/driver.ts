import { VdiskError } from '../../errors.js';
import type { FormatDriver, ProbeInput } from '../driver.js';
import { COWD_MAGIC, DESCRIPTOR_SIGNATURE, SPARSE_MAGIC } from './constants.js';
import { VMDK_CREATE_OPTIONS, vmdkCreateOptions, writeMonolithicFlat, writeMonolithicSparse } from './create.js';
import { openVmdk } from './open-image.js';
import { writeStream } from './stream-writer.js';
import { checkVmdk } from './check.js';

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
    if (o.subformat === 'monolithicFlat') await writeMonolithicFlat(file, o, req);
    else if (o.subformat === 'streamOptimized') {
      if (req.backing) throw new VdiskError('UNSUPPORTED', `${req.path}: a streamOptimized VMDK cannot have a parent`);
      await writeStream(file, o, null);
    } else await writeMonolithicSparse(file, o, req);
  },
  async convertFrom(source, file, req, onProgress) {
    const o = vmdkCreateOptions(req);
    if (o.subformat !== 'streamOptimized') return false;
    await writeStream(file, o, source, onProgress);
    return true;
  },
  check: (file, options) => checkVmdk(file, options),
};
