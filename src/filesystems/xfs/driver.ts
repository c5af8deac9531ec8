import type { FilesystemDriver } from '../filesystem.js';
import { XfsReader } from './reader.js';

/** XFS, versions 4 and 5, read-only. */
export const xfsDriver: FilesystemDriver = {
  types: ['xfs'],
  open: (volume, ctx) => XfsReader.open(volume, ctx),
};
