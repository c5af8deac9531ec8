import { trimLabel, type Detector, type FsInfo, type VolumeReader } from './types.js';

const VD_START = 32768;
const MAX_DESCRIPTORS = 64;

/** ISO-9660: LABEL from the primary (or Joliet, when present) volume descriptor, UUID from its dates. */
export const iso9660: Detector = {
  name: 'iso9660',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    let pvd: Buffer | null = null;
    let joliet: Buffer | null = null;
    for (let i = 0; i < MAX_DESCRIPTORS; i++) {
      const d = await v.read(VD_START + i * 2048, 2048);
      if (d.toString('latin1', 1, 6) !== 'CD001') break;
      const type = d[0];
      if (type === 1 && !pvd) pvd = d;
      if (type === 2 && d[88] === 0x25 && d[89] === 0x2f && [0x40, 0x43, 0x45].includes(d[90])) joliet = d;
      if (type === 255) break;
    }
    if (!pvd) return null;
    const info: FsInfo = { filesystem: 'iso9660', size: pvd.readUInt32LE(80) * pvd.readUInt16LE(128) };
    if (joliet) info.version = 'Joliet Extension';
    const plain = trimLabel(pvd.toString('latin1', 40, 72));
    const wide = joliet ? trimLabel(utf16be(joliet.subarray(40, 72))) : undefined;
    // Joliet keeps case and more characters; blkid prefers it when it is a fuller spelling of the same.
    const label = wide && (!plain || wide.toUpperCase().startsWith(plain.toUpperCase())) ? wide : plain;
    if (label) info.label = label;
    const date = isoDate(pvd.subarray(813, 830)) ?? isoDate(pvd.subarray(830, 847));
    if (date) info.uuid = date;
    return info;
  },
};

function utf16be(b: Buffer): string {
  const le = Buffer.alloc(b.length);
  for (let i = 0; i + 1 < b.length; i += 2) {
    le[i] = b[i + 1];
    le[i + 1] = b[i];
  }
  return le.toString('utf16le');
}

/** `YYYY-MM-DD-HH-MM-SS-CC` from a 17-byte ISO date, as blkid builds the UUID; null when unset. */
function isoDate(d: Buffer): string | null {
  const s = d.toString('latin1', 0, 16);
  if (!/^\d{16}$/.test(s) || /^0+$/.test(s)) return null;
  return `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}-${s.slice(8, 10)}-${s.slice(10, 12)}-${s.slice(12, 14)}-${s.slice(14, 16)}`;
}
