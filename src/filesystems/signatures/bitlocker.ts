import type { Detector, FsInfo, VolumeReader } from '../types.js';

// The three boot sectors BitLocker writes: Vista, Windows 7 and later, and BitLocker To Go (a FAT
// look-alike so that older Windows shows the reader program).
const VISTA = Buffer.from('eb5290', 'hex');
const WIN7 = Buffer.from('eb5890', 'hex');
const FVE = '-FVE-FS-';

/**
 * BitLocker: the boot sector's signature, and for Windows 7 and To Go the FVE metadata block it points
 * to, whose version blkid reports (Vista's has none); Windows 7's volume serial is shown as the UUID,
 * sixteen decimal digits, as blkid prints it.
 */
export const bitlocker: Detector = {
  name: 'BitLocker',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const h = await v.read(0, 512);
    const head = h.subarray(0, 3);
    const oem = h.toString('latin1', 3, 11);
    let kind: 'vista' | 'win7' | 'togo';
    if (head.equals(VISTA) && oem === FVE) kind = 'vista';
    else if (head.equals(WIN7) && oem === FVE) kind = 'win7';
    else if (head.equals(WIN7) && oem === 'MSWIN4.1') kind = 'togo';
    else return null;
    if (kind === 'vista') return { filesystem: 'BitLocker' };
    const fveAt = Number(h.readBigUInt64LE(kind === 'win7' ? 176 : 440));
    if (fveAt === 0 || !Number.isSafeInteger(fveAt) || fveAt + 12 > v.size) return null;
    const fve = await v.read(fveAt, 12);
    if (fve.toString('latin1', 0, 8) !== FVE) return null;
    const info: FsInfo = { filesystem: 'BitLocker', version: String(fve.readUInt16LE(10)) };
    if (kind === 'win7') info.uuid = String(h.readUInt32LE(67)).padStart(16, '0');
    return info;
  },
};
