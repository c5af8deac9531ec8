import type { Detector, FsInfo, VolumeReader } from './types.js';

const MAX_VDS = 64;

/** A UDF dstring: compression id 8 (8-bit) or 16 (UTF-16BE), length in the last byte. */
function dstring(b: Buffer): string | undefined {
  const len = b[b.length - 1];
  if (len === 0 || len > b.length - 1) return undefined;
  const comp = b[0];
  const body = b.subarray(1, len);
  if (comp === 8) return body.toString('latin1');
  if (comp === 16) {
    const le = Buffer.alloc(body.length - (body.length % 2));
    for (let i = 0; i + 1 < body.length; i += 2) {
      le[i] = body[i + 1];
      le[i + 1] = body[i];
    }
    return le.toString('utf16le');
  }
  return undefined;
}

/**
 * UDF: an NSR02/NSR03 descriptor in the volume recognition sequence, then the anchor at sector 256
 * and the main volume descriptor sequence: LABEL is the logical volume identifier, UUID the first 16
 * hex digits of the volume set identifier (as blkid derives it), VERSION the UDF revision.
 */
export const udf: Detector = {
  name: 'udf',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    let nsr = false;
    for (let i = 0; i < 64; i++) {
      const d = await v.read(32768 + i * 2048, 8);
      const id = d.toString('latin1', 1, 6);
      if (id === 'NSR02' || id === 'NSR03') nsr = true;
      if (!['BEA01', 'NSR02', 'NSR03', 'TEA01', 'CD001', 'BOOT2', 'CDW02'].includes(id)) break;
    }
    if (!nsr) return null;
    for (const bs of [2048, 512, 4096, 1024]) {
      const anchor = await v.read(256 * bs, 512);
      if (anchor.readUInt16LE(0) !== 2 || anchor.readUInt32LE(12) !== 256) continue;
      const len = anchor.readUInt32LE(16);
      const loc = anchor.readUInt32LE(20);
      const info: FsInfo = { filesystem: 'udf' };
      for (let i = 0; i < Math.min(MAX_VDS, Math.ceil(len / bs)); i++) {
        const d = await v.read((loc + i) * bs, 512);
        const tag = d.readUInt16LE(0);
        if (tag === 1) {
          const set = dstring(d.subarray(72, 200));
          if (set) {
            const m = /^[0-9a-fA-F]{16}/.exec(set) ?? /^[0-9a-fA-F]{8}/.exec(set);
            if (m) info.uuid = m[0].toLowerCase();
          }
          if (!info.label) {
            const vol = dstring(d.subarray(24, 56));
            if (vol) info.label = vol;
          }
        } else if (tag === 6) {
          const lv = dstring(d.subarray(84, 212));
          if (lv) info.label = lv;
          const rev = d.readUInt16LE(240); // domain identifier (regid at 216): suffix starts with the UDF revision
          if (rev) info.version = `${(rev >> 8).toString(16)}.${(rev & 0xff).toString(16).padStart(2, '0')}`;
        } else if (tag === 8) {
          break; // terminating descriptor
        }
      }
      return info;
    }
    return { filesystem: 'udf' };
  },
};
