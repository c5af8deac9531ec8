import type { FilesystemDriver } from '../filesystem.js';
import { UdfReader } from './reader.js';

/** UDF 1.02 to 2.60 (ECMA-167 3rd edition with the OSTA UDF profile), read-only. */
export const udfDriver: FilesystemDriver = {
  types: ['udf'],
  open: (volume, ctx) => UdfReader.open(volume, ctx),
};
