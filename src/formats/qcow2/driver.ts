import { VdiskError } from '../../errors.js';
import type { FormatDriver } from '../driver.js';
import { QCOW2_MAGIC } from './constants.js';
import { Qcow2Image } from './qcow2-image.js';
import { QCOW2_CREATE_OPTIONS, createQcow2, qcow2Options } from './create.js';
import { convertCompressed } from './convert-compressed.js';
import { measureQcow2 } from './measure.js';
import { checkQcow2 } from './check.js';

export const qcow2Driver: FormatDriver = {
  name: 'qcow2',
  description: "QEMU's copy-on-write format, version 2 and 3",
  extensions: ['.qcow2'],
  probe: ({ head }) => (head.length >= 8 && head.readUInt32BE(0) === QCOW2_MAGIC && head.readUInt32BE(4) >= 2 ? 100 : 0),
  async open(file, ctx) {
    const head = Buffer.alloc(4);
    await file.readAt(head, 0);
    if (head.readUInt32BE(0) !== QCOW2_MAGIC) throw new VdiskError('CORRUPT', `${file.path}: not a qcow2 image (no QFI\\xfb magic)`);
    return Qcow2Image.open(file, ctx);
  },
  createOptions: QCOW2_CREATE_OPTIONS,
  create: (file, req) => createQcow2(file, req),
  convertFrom: (source, file, req, onProgress) => convertCompressed(source, file, req, onProgress),
  measure: (req, allocated) => measureQcow2(qcow2Options(req), req.size, allocated),
  check: (file, options) => checkQcow2(file, options),
};
