import { VdiskError } from '../../errors.js';
import type { FormatDriver } from '../driver.js';
import { RawImage } from './raw-image.js';

/** Raw: the file is the disk. Every file can be read as raw, so it is the probe's fallback. */
export const rawDriver: FormatDriver = {
  name: 'raw',
  description: 'a plain disk: the file holds every byte where it is',
  extensions: ['.img', '.raw'],
  probe: () => 1,
  // qemu-img's rule: a probed raw image's first sector is not to be changed (see RawImage.write).
  open: async (file, ctx) => RawImage.fromFile(file, ctx.probed),
  createOptions: {},
  async create(file, req) {
    if (req.backing) throw new VdiskError('USAGE', `${req.path}: a raw image cannot have a backing file`);
    if (!Number.isSafeInteger(req.size) || req.size < 0) throw new VdiskError('USAGE', `size must be a number of bytes, not ${req.size}`);
    await file.truncate(req.size);
  },
  // qemu-img's answer: the disk in whole sectors, however much of it holds data.
  measure: (req) => {
    const size = Math.ceil(req.size / 512) * 512;
    return { required: size, fullyAllocated: size };
  },
};
