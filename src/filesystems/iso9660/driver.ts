import type { FilesystemDriver } from '../filesystem.js';
import { IsoReader } from './reader.js';

/** ISO-9660 with Joliet, Rock Ridge and El Torito, read-only by nature. */
export const iso9660Driver: FilesystemDriver = {
  types: ['iso9660'],
  open: (volume, ctx) => IsoReader.open(volume, ctx),
};
