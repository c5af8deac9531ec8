import type { Detector, FsInfo, VolumeReader } from '../types.js';
import { parseBootSector } from './boot-sector.js';
import { AT, parseRecord } from './record.js';

const VOLUME_RECORD = 3; // $Volume

/**
 * NTFS, 256 to 4096-byte sectors: UUID is the volume serial as 16 hex digits, LABEL the $VOLUME_NAME
 * attribute of the $Volume MFT record. The boot sector and the record are parsed by the reader's own
 * modules; a damaged $Volume record only costs the label, as with blkid.
 */
export const ntfs: Detector = {
  name: 'ntfs',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const boot = parseBootSector(await v.read(0, 512));
    if (typeof boot === 'string') return null;
    const info: FsInfo = { filesystem: 'ntfs', uuid: boot.serial, size: boot.totalSectors * boot.bytesPerSector };
    // The first records of $MFT are contiguous from its first cluster (mkntfs and Windows both lay them so).
    const mft = boot.mftLcn * boot.clusterSize;
    if (!Number.isSafeInteger(mft) || mft >= v.size) return info;
    const raw = Buffer.from(await v.read(mft + VOLUME_RECORD * boot.recordSize, boot.recordSize));
    const rec = parseRecord(raw, VOLUME_RECORD, Number.MAX_SAFE_INTEGER);
    if (rec === null || typeof rec === 'string') return info;
    const name = rec.attributes.find((a) => a.type === AT.VOLUME_NAME && a.resident);
    if (name?.value && name.value.length > 0) info.label = name.value.toString('utf16le');
    return info;
  },
};
