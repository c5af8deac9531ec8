import type { Detector, FsInfo, VolumeReader } from '../types.js';
import { parseAnchor } from './anchor.js';
import { parseLogicalVolume, revisionString } from './logical-volume.js';
import { parsePrimaryVolume, volumeSetUuid } from './primary-volume.js';
import { findNsr } from './recognition.js';
import { parseTag, TAG } from './tag.js';

const MAX_VDS = 64;

/**
 * UDF: an NSR02/NSR03 descriptor in the volume recognition sequence, then the anchor at sector 256
 * and the main volume descriptor sequence: LABEL is the logical volume identifier, UUID the first 16
 * hex digits of the volume set identifier (as blkid derives it), VERSION the UDF revision. Detection
 * looks only at tag identifiers and the anchor's location, leaving checksums and CRCs to the reader, so
 * that a volume with one damaged descriptor is still named.
 */
export const udf: Detector = {
  name: 'udf',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    // With blocks over 2048 bytes each recognition descriptor has its own block (ECMA-167 2/8.4): 4096-byte mkudffs volumes, which blkid finds.
    if (!(await findNsr(v, 2048)) && !(await findNsr(v, 4096))) return null;
    for (const bs of [2048, 512, 4096, 1024]) {
      const a = await v.read(256 * bs, 512);
      const t = parseTag(a);
      if (t.id !== TAG.ANCHOR || t.location !== 256) continue;
      const anchor = parseAnchor(a);
      if (!anchor) continue;
      const info: FsInfo = { filesystem: 'udf' };
      for (let i = 0; i < Math.min(MAX_VDS, Math.ceil(anchor.main.length / bs)); i++) {
        const d = await v.read((anchor.main.location + i) * bs, 512);
        const tag = parseTag(d).id;
        if (tag === TAG.PRIMARY_VOLUME) {
          const pvd = parsePrimaryVolume(d);
          const uuid = volumeSetUuid(pvd.volumeSetIdentifier);
          if (uuid) info.uuid = uuid;
          if (!info.label && pvd.volumeIdentifier) info.label = pvd.volumeIdentifier;
        } else if (tag === TAG.LOGICAL_VOLUME) {
          const lvd = parseLogicalVolume(d);
          if (lvd.identifier) info.label = lvd.identifier;
          if (lvd.revision) info.version = revisionString(lvd.revision);
        } else if (tag === TAG.TERMINATING) {
          break;
        }
      }
      return info;
    }
    return { filesystem: 'udf' };
  },
};
