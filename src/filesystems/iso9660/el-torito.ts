/**
 * The El Torito boot catalog (El Torito 1.0, 2.0-2.5): 32-byte entries in 2048-byte sectors. A
 * validation entry whose 16-bit words sum to zero, the initial/default entry, then section headers
 * (0x90, the last 0x91) each followed by its section entries and their extension entries (0x44).
 * Each entry names a boot image by its start (in 2048-byte sectors) and a count of 512-byte sectors.
 */

export interface BootEntry {
  /** 0 for the default entry, then in catalog order. */
  index: number;
  bootable: boolean;
  /** 0 no emulation, 1-3 floppies, 4 hard disk (2.2). */
  media: number;
  platform: number;
  loadSegment: number;
  systemType: number;
  /** Virtual 512-byte sectors the BIOS loads. */
  sectorCount: number;
  /** Start, in 2048-byte sectors. */
  loadRba: number;
  /** Bytes exposed: the emulated floppy's size, else sectorCount * 512, as 7-Zip shows them. */
  size: number;
  /** 7-Zip's file name for it: "Boot-NoEmul.img", "Boot-1.44M.img", ... */
  name: string;
}

export const ENTRY = 32;
const MEDIA_NAMES = ['NoEmul', '1.2M', '1.44M', '2.88M', 'HardDisk'];
const FLOPPY_BYTES = [0, 1200 * 1024, 1440 * 1024, 2880 * 1024];

/** Why the validation entry is not one, or null (2.1). */
export function validationProblem(b: Buffer): string | null {
  if (b.length < ENTRY) return 'shorter than one entry';
  if (b[0] !== 1) return `header id ${b[0]} where the validation entry has 1`;
  if (b[30] !== 0x55 || b[31] !== 0xaa) return 'key bytes are not 55 AA';
  let sum = 0;
  for (let i = 0; i < ENTRY; i += 2) sum = (sum + b.readUInt16LE(i)) & 0xffff;
  if (sum !== 0) return `checksum mismatch (words sum to 0x${sum.toString(16)})`;
  return null;
}

function parseEntry(b: Buffer, at: number, index: number, platform: number): BootEntry | null {
  const indicator = b[at];
  if (indicator !== 0x88 && indicator !== 0x00) return null;
  const media = b[at + 1] & 0x0f;
  if (media >= MEDIA_NAMES.length) return null;
  const sectorCount = b.readUInt16LE(at + 6);
  return {
    index,
    bootable: indicator === 0x88,
    media,
    platform,
    loadSegment: b.readUInt16LE(at + 2),
    systemType: b[at + 4],
    sectorCount,
    loadRba: b.readUInt32LE(at + 8),
    size: media >= 1 && media <= 3 ? FLOPPY_BYTES[media] : sectorCount * 512,
    name: `Boot-${MEDIA_NAMES[media]}.img`,
  };
}

/**
 * The boot entries of a catalog whose validation entry was checked; the buffer bounds the walk.
 * Entries that are neither bootable nor non-bootable (unused slots) end a section.
 */
export function parseBootCatalog(b: Buffer): BootEntry[] {
  const platform = b[1];
  const entries: BootEntry[] = [];
  const first = parseEntry(b, ENTRY, 0, platform);
  if (first) entries.push(first);
  let pos = 2 * ENTRY;
  while (pos + ENTRY <= b.length) {
    const header = b[pos];
    if (header !== 0x90 && header !== 0x91) break;
    const sectionPlatform = b[pos + 1];
    const count = b.readUInt16LE(pos + 2);
    pos += ENTRY;
    for (let k = 0; k < count && pos + ENTRY <= b.length; pos += ENTRY) {
      if (b[pos] === 0x44) continue; // an extension entry of the previous section entry (2.5)
      const e = parseEntry(b, pos, entries.length, sectionPlatform);
      k++;
      if (e) entries.push(e);
    }
    if (header === 0x91) break;
  }
  if (entries.length > 1) for (const e of entries) e.name = `${e.index + 1}-${e.name}`;
  return entries;
}
