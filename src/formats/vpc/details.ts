import type { FormatDetails } from '../driver.js';
import { DISK_TYPE_NAMES } from './constants.js';
import { vhdTimeToIso } from './footer.js';
import { chsSectors } from './geometry.js';
import type { VpcImage } from './vpc-image.js';

const HOSTS: Record<string, string> = { Wi2k: 'Windows', 'Mac ': 'Macintosh' };

/** `info`'s VHD part: the footer's fields, the dynamic header's, the parent's for a differencing disk. */
export async function vpcDetails(image: VpcImage): Promise<FormatDetails> {
  const L = image.layout;
  const f = L.footer;
  const data: Record<string, unknown> = {
    'disk-type': DISK_TYPE_NAMES[f.diskType],
    'creator-application': f.creatorApp.replace(/\0/g, ''),
    'creator-version': `${f.creatorVersion >>> 16}.${f.creatorVersion & 0xffff}`,
    'creator-host-os': HOSTS[f.creatorHostOs] ?? f.creatorHostOs.replace(/\0/g, ''),
    'disk-uuid': f.uuid,
    timestamp: vhdTimeToIso(f.timestamp),
    'saved-state': f.savedState,
    geometry: `${f.chs.cylinders}/${f.chs.heads}/${f.chs.sectors}`,
    cylinders: f.chs.cylinders,
    heads: f.chs.heads,
    'sectors-per-track': f.chs.sectors,
    'geometry-size': chsSectors(f.chs) * 512,
    'original-size': f.originalSize,
    'current-size': f.currentSize,
  };
  const out: FormatDetails = {};
  if (L.header) {
    out['cluster-size'] = L.blockSize;
    data['block-size'] = L.blockSize;
    data['total-blocks'] = L.entries;
    data['allocated-blocks'] = await image.allocatedBlocks();
  }
  if (image.isDifferencing && L.header) {
    data['parent-name'] = L.header.parentName;
    data['parent-uuid'] = L.header.parentUuid;
    data['parent-timestamp'] = vhdTimeToIso(L.header.parentTimestamp);
    const locs = await image.parentLocations();
    data['parent-locators'] = locs.map((l) => `${l.code}: ${l.stored}`);
    const parent = await image.backingImage().catch(() => null);
    const stored = locs.find((l) => l.code === 'W2ru')?.stored ?? locs[0]?.stored ?? L.header.parentName;
    if (stored) out['backing-filename'] = stored;
    if (parent) {
      out['full-backing-filename'] = parent.filename;
      out['backing-filename-format'] = parent.format;
    }
  }
  if (L.warnings.length) data.warnings = L.warnings;
  out['format-specific'] = { type: 'vpc', data };
  return out;
}
