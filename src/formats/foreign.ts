import type { FormatDriver, ProbeInput } from './driver.js';

/**
 * Formats vdisk recognises but does not read yet: rows of the table without `open`, so that a file
 * carrying one of these signatures is refused by name rather than read as raw (reading a qcow2 file
 * as a raw disk shows its header as the disk's first sector, and writing into it destroys the image).
 * The signatures are the ones qemu-img probes.
 */
const at = (b: Buffer, offset: number, text: string) =>
  b.length >= offset + text.length && b.toString('latin1', offset, offset + text.length) === text;

/** The VHD footer's checksum: the one's complement of the byte sum, the checksum field counted as zero. */
export function vhdFooterValid(f: Buffer): boolean {
  if (f.length < 512 || !at(f, 0, 'conectix')) return false;
  let sum = 0;
  for (let i = 0; i < 512; i++) if (i < 64 || i >= 68) sum += f[i];
  return ((~sum) >>> 0) === f.readUInt32BE(64);
}

function recognised(name: string, description: string, probe: (p: ProbeInput) => number): FormatDriver {
  return { name, description, probe };
}

export const FOREIGN_DRIVERS: FormatDriver[] = [
  recognised('qcow2', "QEMU's copy-on-write format, version 2 and 3", ({ head }) => (at(head, 0, 'QFI\xfb') && head.readUInt32BE(4) >= 2 ? 100 : 0)),
  recognised('qcow', "QEMU's first copy-on-write format", ({ head }) => (at(head, 0, 'QFI\xfb') && head.readUInt32BE(4) === 1 ? 100 : 0)),
  recognised('qed', "QEMU's enhanced disk format", ({ head }) => (at(head, 0, 'QED\0') ? 100 : 0)),
  // Sparse extents (KDMV), ESX COW disks (COWD), and a descriptor file naming its extents.
  recognised('vmdk', "VMware's virtual disk", ({ head }) => (at(head, 0, 'KDMV') || at(head, 0, 'COWD') || at(head, 0, '# Disk DescriptorFile') ? 100 : 0)),
  recognised('vdi', "VirtualBox's disk image", ({ head }) => (head.length >= 0x44 && head.readUInt32LE(0x40) === 0xbeda107f ? 100 : 0)),
  // Dynamic and differencing VHDs start with a copy of the footer; a fixed VHD is the disk plus a footer.
  recognised('vpc', "Microsoft's VHD", ({ head, tail }) => (at(head, 0, 'conectix') ? 100 : tail !== null && vhdFooterValid(tail) ? 50 : 0)),
  recognised('parallels', 'Parallels disk image', ({ head }) => (at(head, 0, 'WithoutFreeSpace') || at(head, 0, 'WithouFreSpacExt') ? 100 : 0)),
  recognised('dmg', 'Apple disk image', ({ tail }) => (tail !== null && at(tail, 0, 'koly') ? 50 : 0)),
  recognised('bochs', 'Bochs disk image', ({ head }) => (at(head, 0, 'Bochs Virtual HD Image') ? 100 : 0)),
  recognised('cloop', 'compressed loop image', ({ head }) => (at(head, 0, '#!/bin/sh\n#V2.0 Format') ? 100 : 0)),
];
