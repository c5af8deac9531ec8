import type { FilesystemDriver } from '../filesystem.js';
import { ExtReader } from './reader.js';

/** ext2, ext3 and ext4 share one reader; features, not the name, decide what it does. */
export const extDriver: FilesystemDriver = {
  types: ['ext2', 'ext3', 'ext4'],
  open: (volume, ctx) => ExtReader.open(volume, ctx),
};
