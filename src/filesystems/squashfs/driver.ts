import type { FilesystemDriver } from '../filesystem.js';
import { SquashfsReader } from './reader.js';

/** squashfs 4.0 (gzip, lz4, zstd), read-only by nature. */
export const squashfsDriver: FilesystemDriver = {
  types: ['squashfs'],
  open: (volume, ctx) => SquashfsReader.open(volume, ctx),
};
