import { roundUp } from './constants.js';
import type { Qcow2Options } from './create.js';
import { refcountMetadataClusters } from './refcounts.js';

/**
 * qemu-img measure -O qcow2: the fully allocated file is the header cluster, every L2 table, the L1
 * table and the refcount structures counting all of them, plus the data (the estimate QEMU makes,
 * block/qcow2.c). `required` is that minus the data the new image will not hold; allocated bytes
 * count in whole clusters, as QEMU counts them.
 */
export function measureQcow2(o: Qcow2Options, size: number, allocated: number): { required: number; fullyAllocated: number } {
  const cs = 2 ** o.clusterBits;
  const entry = o.extendedL2 ? 16 : 8;
  const aligned = roundUp(size, cs);
  let meta = cs;
  const l2Entries = roundUp(aligned / cs, cs / entry);
  meta += l2Entries * entry;
  const l1Entries = roundUp((l2Entries * entry) / cs, cs / 8);
  meta += l1Entries * 8;
  const { blocks, table } = refcountMetadataClusters((meta + aligned) / cs, cs, o.refcountOrder);
  meta += (blocks + table) * cs;
  const fullyAllocated = meta + aligned;
  return { required: fullyAllocated - aligned + Math.min(aligned, roundUp(allocated, cs)), fullyAllocated };
}
