import type { FilesystemDriver } from '../filesystem.js';
import { NtfsReader } from './reader.js';

/** The read-only NTFS reader behind `ls`, `cat`, `get` and `tar`. */
export const ntfsDriver: FilesystemDriver = {
  types: ['ntfs'],
  open: (volume, ctx) => NtfsReader.open(volume, ctx),
};
