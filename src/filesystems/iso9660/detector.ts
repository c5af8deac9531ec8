import { trimLabel, type Detector, type FsInfo, type VolumeReader } from '../types.js';
import { digitDateUuid } from './dates.js';
import { readDescriptorSet, ucs2be } from './descriptors.js';

/** ISO-9660: LABEL from the primary (or Joliet, when present) volume descriptor, UUID from its dates. */
export const iso9660: Detector = {
  name: 'iso9660',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const { primary: pvd, joliet } = await readDescriptorSet(v);
    if (!pvd) return null;
    const info: FsInfo = { filesystem: 'iso9660', size: pvd.volumeSpaceSize * pvd.logicalBlockSize };
    if (joliet) info.version = 'Joliet Extension';
    const plain = trimLabel(pvd.volumeId.toString('latin1'));
    const wide = joliet ? trimLabel(ucs2be(joliet.volumeId)) : undefined;
    // Joliet keeps case and more characters; blkid prefers it when it is a fuller spelling of the same.
    const label = wide && (!plain || wide.toUpperCase().startsWith(plain.toUpperCase())) ? wide : plain;
    if (label) info.label = label;
    const date = digitDateUuid(pvd.raw, 813) ?? digitDateUuid(pvd.raw, 830);
    if (date) info.uuid = date;
    return info;
  },
};
