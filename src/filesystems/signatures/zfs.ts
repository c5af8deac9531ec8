import { trimLabel, type Detector, type FsInfo, type VolumeReader } from '../types.js';

const LABEL_SIZE = 256 * 1024;
const UBERBLOCKS_AT = 128 * 1024;
const NVLIST_AT = 16 * 1024;
const UB_MAGIC = 0x00bab10cn;
const UB_MAGIC_SWAPPED = 0x0cb1ba0000000000n;
const WANT = 4;
const DATA_TYPE_UINT64 = 8;
const DATA_TYPE_STRING = 9;

/**
 * A ZFS pool member, found as blkid finds it: at least four uberblocks across the vdev labels (two at
 * the start, two at the end). VERSION is the SPA version of the last uberblock counted; LABEL (the pool's
 * name) and UUID (the pool GUID, in decimal) come from the XDR name-value list of that label, read as
 * blkid reads it: pairs in its first 4 KiB, each bounded by its own size.
 */
export const zfs: Detector = {
  name: 'zfs_member',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    if (v.size < 64 * 1024 * 1024) return null;
    const align = v.size % LABEL_SIZE;
    const labels = [0, LABEL_SIZE, v.size - 2 * LABEL_SIZE - align, v.size - LABEL_SIZE - align];
    let found = 0;
    for (const at of labels) {
      const ring = await v.read(at + UBERBLOCKS_AT, LABEL_SIZE - UBERBLOCKS_AT);
      let last = -1;
      let swapped = false;
      for (let o = 0; o < ring.length; o += 1024) {
        const m = ring.readBigUInt64LE(o);
        if (m === UB_MAGIC || m === UB_MAGIC_SWAPPED) {
          found++;
          last = o;
          swapped = m === UB_MAGIC_SWAPPED;
        }
      }
      if (last < 0 || found < WANT) continue;
      const version = swapped ? ring.readBigUInt64BE(last + 8) : ring.readBigUInt64LE(last + 8);
      return { filesystem: 'zfs_member', version: version.toString(), ...(await poolIdentity(v, at)) };
    }
    return null;
  },
};

/** The pool's name and GUID from the name-value list of the label at `at`. */
async function poolIdentity(v: VolumeReader, at: number): Promise<{ label?: string; uuid?: string }> {
  const nv = await v.read(at - (at % LABEL_SIZE) + NVLIST_AT, 4096);
  const out: { label?: string; uuid?: string } = {};
  let p = 12; // the list's own header
  let left = 4096;
  let found = 0;
  while (left > 12 && p + 12 <= nv.length && found < 3) {
    const size = nv.readUInt32BE(p);
    const nameLen = nv.readUInt32BE(p + 8);
    if (size === 0) break;
    let avail = size - nameLen - 12;
    if (left < size || avail < 0 || p + 12 + nameLen > nv.length) break;
    const name = nv.toString('latin1', p + 12, p + 12 + nameLen);
    const value = p + 12 + ((nameLen + 3) & ~3);
    // blkid compares only as many characters as the pair's name has.
    const is = (want: string) => want.startsWith(name.split('\0')[0]) && name.length > 0;
    if (value + 16 <= nv.length) {
      if (is('name')) {
        const len = nv.readUInt32BE(value + 8);
        avail -= len + 12;
        if (nv.readUInt32BE(value) === DATA_TYPE_STRING && avail >= 0 && value + 12 + len <= nv.length) {
          const label = trimLabel(nv.toString('utf8', value + 12, value + 12 + len).split('\0')[0]);
          if (label) out.label = label;
        }
        found++;
      } else if (is('guid')) {
        found++;
      } else if (is('pool_guid')) {
        avail -= 16;
        if (nv.readUInt32BE(value) === DATA_TYPE_UINT64 && avail >= 0) out.uuid = nv.readBigUInt64BE(value + 8).toString();
        found++;
      }
    }
    left = left > size ? left - size : 0;
    p += size;
  }
  return out;
}
