import type { FilesystemDriver } from '../filesystem.js';
import { FatReader } from './reader.js';

/** FAT12/16/32, which blkid calls vfat. */
export const fatDriver: FilesystemDriver = {
  types: ['vfat'],
  open: (volume, ctx) => FatReader.open(volume, ctx),
};
