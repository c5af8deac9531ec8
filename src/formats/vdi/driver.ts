import { VdiskError } from '../../errors.js';
import type { FormatDriver } from '../driver.js';
import { hasVdiSignature } from './header.js';
import { VdiImage } from './vdi-image.js';
import { VDI_CREATE_OPTIONS, vdiMeasure, writeNewVdi } from './create.js';
import { checkVdi } from './check.js';
import { DEFAULT_BLOCK_SIZE } from './constants.js';

export const vdiDriver: FormatDriver = {
  name: 'vdi',
  description: "VirtualBox's VDI: dynamic and static (fixed)",
  extensions: ['.vdi'],
  probe: (p) => (hasVdiSignature(p.head) ? 100 : 0),
  open: async (file) => VdiImage.fromFile(file),
  createOptions: VDI_CREATE_OPTIONS,
  async create(file, req) {
    if (req.backing) throw new VdiskError('UNSUPPORTED', `${req.path}: vdisk cannot make differencing VDI images`);
    await writeNewVdi(file, req);
  },
  measure: vdiMeasure,
  measureGranularity: () => DEFAULT_BLOCK_SIZE,
  check: (file, options) => checkVdi(file, options),
};
