import { closeSync, ftruncateSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { crc32 } from '@node-rs/crc32';
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
 * A raw disk with a GPT of `entries` entries (UEFI 2.x 5.3: protective MBR, primary header at LBA 1
 * and its entry array at LBA 2, backup array and header at the end, CRC-32 over each), of which the
 * first `partitions` hold Linux-data partitions of `sectorsEach` 512-byte sectors, back to back.
 * Sparse: only the tables are written.
 */
export function makeGpt(path: string, entries: number, partitions: number, sectorsEach = 8): void {
  const S = 512;
  const arraySectors = Math.ceil((entries * 128) / S);
  const firstUsable = 2 + arraySectors;
  const total = firstUsable + partitions * sectorsEach + 2048 + arraySectors + 1;
  const lastUsable = total - 2 - arraySectors;
  const array = Buffer.alloc(arraySectors * S);
  const linux = Buffer.from('af3dc60f838472478e793d69d8477de4', 'hex'); // 0FC63DAF-8483-4772-8E79-3D69D8477DE4
  for (let i = 0; i < partitions; i++) {
    const o = i * 128;
    linux.copy(array, o);
    array.writeUInt32LE(i + 1, o + 16); // a unique partition GUID
    array.writeUInt32LE(0x5eed, o + 28);
    array.writeBigUInt64LE(BigInt(firstUsable + i * sectorsEach), o + 32);
    array.writeBigUInt64LE(BigInt(firstUsable + (i + 1) * sectorsEach - 1), o + 40);
    Buffer.from(`p${i + 1}`, 'utf16le').copy(array, o + 56);
  }
  const arrayCrc = crc32(array.subarray(0, entries * 128)) >>> 0;
  const header = (my: number, alternate: number, entriesLba: number) => {
    const h = Buffer.alloc(S);
    h.write('EFI PART', 0, 'latin1');
    h.writeUInt32LE(0x00010000, 8);
    h.writeUInt32LE(92, 12);
    h.writeBigUInt64LE(BigInt(my), 24);
    h.writeBigUInt64LE(BigInt(alternate), 32);
    h.writeBigUInt64LE(BigInt(firstUsable), 40);
    h.writeBigUInt64LE(BigInt(lastUsable), 48);
    Buffer.from('0123456789abcdef0123456789abcdef', 'hex').copy(h, 56);
    h.writeBigUInt64LE(BigInt(entriesLba), 72);
    h.writeUInt32LE(entries, 80);
    h.writeUInt32LE(128, 84);
    h.writeUInt32LE(arrayCrc, 88);
    h.writeUInt32LE(crc32(h.subarray(0, 92)) >>> 0, 16);
    return h;
  };
  const mbr = Buffer.alloc(S);
  mbr[446 + 4] = 0xee;
  mbr.writeUInt32LE(1, 446 + 8);
  mbr.writeUInt32LE(Math.min(total - 1, 0xffffffff), 446 + 12);
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, total * S);
    writeSync(fd, Buffer.concat([mbr, header(1, total - 1, 2), array]), 0, undefined, 0);
    writeSync(fd, Buffer.concat([array, header(total - 1, 1, total - 1 - arraySectors)]), 0, undefined, (total - 1 - arraySectors) * S);
  } finally {
    closeSync(fd);
  }
}
