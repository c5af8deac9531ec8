import { uuidFromBytes, type Detector, type FsInfo, type VolumeReader } from '../types.js';

const XLOG_MAGIC = 0xfeedbabe;
const MIN_LOG_BYTES = 10 * 1024 * 1024;

/**
 * An XFS external log device: a log record header (magic, version 1 or 2, a length, a known format)
 * at any 512-byte sector of the first 256 KiB; a sector holding an XFS superblock first means a plain
 * XFS volume instead. blkid shows the file system's UUID from the header as LOGUUID.
 */
export const xfsLog: Detector = {
  name: 'xfs_external_log',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    if (v.size < MIN_LOG_BYTES) return null;
    const buf = await v.read(0, 256 * 1024);
    for (let at = 0; at < buf.length; at += 512) {
      if (buf.toString('latin1', at, at + 4) === 'XFSB') return null;
      if (buf.readUInt32BE(at) !== XLOG_MAGIC) continue;
      const version = buf.readUInt32BE(at + 8);
      const fmt = buf.readUInt32BE(at + 300);
      if ((version !== 1 && version !== 2) || buf.readInt32BE(at + 12) <= 0 || fmt < 1 || fmt > 3) continue;
      const info: FsInfo = { filesystem: 'xfs_external_log' };
      const uuid = uuidFromBytes(buf.subarray(at + 304, at + 320));
      if (uuid) info.logUuid = uuid;
      return info;
    }
    return null;
  },
};
