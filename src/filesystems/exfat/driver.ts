import type { FilesystemDriver } from '../filesystem.js';
import { ExfatReader } from './reader.js';

/** exFAT volumes, as mount-detect names them. */
export const exfatDriver: FilesystemDriver = {
  types: ['exfat'],
  open: (volume, ctx) => ExfatReader.open(volume, ctx),
};
