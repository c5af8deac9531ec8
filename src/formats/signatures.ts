/**
 * Signatures of image formats vdisk does not read yet. A file that carries one is refused by name
 * rather than read as raw: reading a qcow2 file as a raw disk shows its header as the disk's first
 * sector, and writing into it destroys the image (qemu-img probes the same signatures).
 */
interface Foreign {
  name: string;
  /** Looks at the first 512 bytes, and the last 512 where the format keeps a footer there. */
  matches(head: Buffer, tail: Buffer | null, size: number): boolean;
}

const at = (b: Buffer, offset: number, text: string) =>
  b.length >= offset + text.length && b.toString('latin1', offset, offset + text.length) === text;

/** The VHD footer's checksum: the one's complement of the byte sum, the checksum field counted as zero. */
function vhdFooterValid(f: Buffer): boolean {
  if (!at(f, 0, 'conectix')) return false;
  let sum = 0;
  for (let i = 0; i < 512; i++) if (i < 64 || i >= 68) sum += f[i];
  return ((~sum) >>> 0) === f.readUInt32BE(64);
}

export const FOREIGN_FORMATS: Foreign[] = [
  { name: 'qcow2', matches: (h) => at(h, 0, 'QFI\xfb') && h.readUInt32BE(4) >= 2 },
  { name: 'qcow', matches: (h) => at(h, 0, 'QFI\xfb') && h.readUInt32BE(4) === 1 },
  { name: 'qed', matches: (h) => at(h, 0, 'QED\0') },
  // Sparse extents (KDMV), ESX COW disks (COWD), and a descriptor file naming its extents.
  { name: 'vmdk', matches: (h) => at(h, 0, 'KDMV') || at(h, 0, 'COWD') || at(h, 0, '# Disk DescriptorFile') },
  { name: 'vdi', matches: (h) => h.length >= 0x44 && h.readUInt32LE(0x40) === 0xbeda107f },
  // Dynamic and differencing VHDs start with a copy of the footer; a fixed VHD is the disk plus a footer.
  { name: 'vpc', matches: (h, t) => at(h, 0, 'conectix') || (t !== null && vhdFooterValid(t)) },
  { name: 'parallels', matches: (h) => at(h, 0, 'WithoutFreeSpace') || at(h, 0, 'WithouFreSpacExt') },
  { name: 'dmg', matches: (_h, t) => t !== null && at(t, 0, 'koly') },
  { name: 'bochs', matches: (h) => at(h, 0, 'Bochs Virtual HD Image') },
  { name: 'cloop', matches: (h) => at(h, 0, '#!/bin/sh\n#V2.0 Format') },
];

/** The name of the foreign format whose signature the file carries, or null. */
export function foreignFormat(head: Buffer, tail: Buffer | null, size: number): string | null {
  return FOREIGN_FORMATS.find((f) => f.matches(head, tail, size))?.name ?? null;
}
