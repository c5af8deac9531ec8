import { parseLongAd, type AllocationDescriptor } from './addresses.js';
import { dstring } from './osta.js';

/** The file set descriptor (ECMA-167 4/14.1): the root directory's ICB and the next file set extent. */
export interface FileSet {
  identifier?: string;
  root: AllocationDescriptor;
  next: AllocationDescriptor;
  streams: AllocationDescriptor;
}

export function parseFileSet(b: Buffer): FileSet {
  return {
    identifier: dstring(b.subarray(304, 336)),
    root: parseLongAd(b, 400),
    next: parseLongAd(b, 448),
    streams: parseLongAd(b, 464),
  };
}
