import { closeSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { lvmCrc } from '../../src/filesystems/containers.js';

/** HPFS from its published layout: boot sector with extended BPB, superblock (16) and spare block (17). */
export function makeHpfs(path: string, label: string, serial: number, sectors = 20480): void {
  const b = Buffer.alloc(sectors * 512);
  b.set([0xeb, 0x3c, 0x90], 0);
  b.write('IBM 10.2', 3, 'latin1');
  b.writeUInt16LE(512, 11);
  b[13] = 1;
  b.writeUInt16LE(1, 14);
  b.writeUInt16LE(sectors, 19);
  b[21] = 0xf8;
  b[36] = 0x80;
  b[38] = 0x28; // OS/2's extended BPB signature for HPFS
  b.writeUInt32LE(serial, 39);
  b.write(label.padEnd(11, ' '), 43, 'latin1');
  b.write('HPFS    ', 54, 'latin1');
  b[510] = 0x55;
  b[511] = 0xaa;
  const sb = 16 * 512;
  b.writeUInt32LE(0xf995e849, sb);
  b.writeUInt32LE(0xfa53e9c5, sb + 4);
  b[sb + 8] = 2; // version
  b[sb + 9] = 2; // functional version: disks under 4 GB
  b.writeUInt32LE(200, sb + 12); // root fnode
  b.writeUInt32LE(sectors, sb + 16);
  const sp = 17 * 512;
  b.writeUInt32LE(0xf9911849, sp);
  b.writeUInt32LE(0xfa5229c5, sp + 4);
  writeFileSync(path, b);
}

/**
 * A PC-DOS 1.x single-sided 160 KiB floppy: a boot sector without any BPB, the FAT in sector 1
 * starting with the media byte 0xFE and two 0xFF bytes, a root directory holding one file.
 */
export function makeDos1Floppy(path: string): void {
  const b = Buffer.alloc(160 * 1024);
  b.set([0xeb, 0x2f], 0); // PC-DOS 1.0 jumps over its data with a short JMP and no NOP or BPB
  b.write('7-May-81', 3, 'latin1');
  b.set([0xfe, 0xff, 0xff], 512);
  b.set([0xfe, 0xff, 0xff], 512 + 512); // second FAT
  b.write('IBMBIO  COM', 3 * 512, 'latin1');
  b[3 * 512 + 11] = 0x06;
  writeFileSync(path, b);
}

/** An LVM2 physical volume label (sector 1) and PV header, with its CRC. */
export function makeLvm2(path: string, pvid: string, size = 16 * 1024 * 1024): void {
  const b = Buffer.alloc(size);
  const l = 512;
  b.write('LABELONE', l, 'latin1');
  b.writeBigUInt64LE(1n, l + 8);
  b.writeUInt32LE(32, l + 20);
  b.write('LVM2 001', l + 24, 'latin1');
  b.write(pvid, l + 32, 'latin1');
  b.writeBigUInt64LE(BigInt(size), l + 64);
  b.writeUInt32LE(lvmCrc(b.subarray(l + 20, l + 512)), l + 16);
  writeFileSync(path, b);
}

/** A LUKS1 header (no key material needed to be recognised). */
export function makeLuks1(path: string, uuid: string, size = 4 * 1024 * 1024): void {
  const b = Buffer.alloc(size);
  Buffer.from('LUKS\xba\xbe', 'latin1').copy(b, 0);
  b.writeUInt16BE(1, 6);
  b.write('aes', 8, 'latin1');
  b.write('xts-plain64', 40, 'latin1');
  b.write('sha256', 72, 'latin1');
  b.writeUInt32BE(4096, 104);
  b.writeUInt32BE(64, 108);
  b.writeUInt32BE(1000, 164);
  b.write(uuid, 168, 'latin1');
  for (let k = 0; k < 8; k++) b.writeUInt32BE(0x0000dead, 208 + k * 48); // key slots disabled
  writeFileSync(path, b);
}

/**
 * A BSD disklabel on the bare disk (sector 1), offsets absolute as FreeBSD and util-linux write them;
 * each entry is [slot, offset, size, fstype], in sectors. The checksum is the XOR of the label's words.
 */
export function makeBsdLabel(path: string, sectors: number, entries: [number, number, number, number][]): void {
  const n = 8;
  const label = Buffer.alloc(148 + 16 * n);
  label.writeUInt32LE(0x82564557, 0);
  label.writeUInt32LE(512, 40); // bytes per sector
  label.writeUInt32LE(sectors, 60); // sectors per unit
  label.writeUInt32LE(0x82564557, 132);
  label.writeUInt16LE(n, 138);
  label.writeUInt32LE(8192, 140); // boot area
  label.writeUInt32LE(8192, 144); // largest superblock
  for (const [slot, offset, size, fstype] of entries) {
    const o = 148 + 16 * slot;
    label.writeUInt32LE(size, o);
    label.writeUInt32LE(offset, o + 4);
    label[o + 12] = fstype;
  }
  let sum = 0;
  for (let o = 0; o < label.length; o += 2) sum ^= label.readUInt16LE(o);
  label.writeUInt16LE(sum, 136);
  const fd = openSync(path, 'r+');
  writeSync(fd, label, 0, label.length, 512);
  closeSync(fd);
}
