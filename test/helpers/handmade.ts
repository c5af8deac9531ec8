import { closeSync, ftruncateSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { serializeGpt } from '../../src/partitions/gpt.js';
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

/**
 * HFS+ from its published layout (Apple TN1150): the volume header at 1 KiB with a Finder volume id,
 * and a catalog file of two 4 KiB nodes, the header node and one leaf whose first record is the root
 * folder's thread, keyed by parent 1 and the volume's name.
 */
export function makeHfsPlus(path: string, name: string, volumeId: Buffer, size = 4 * 1024 * 1024): void {
  const img = Buffer.alloc(size);
  const bs = 4096;
  const h = img.subarray(1024);
  h.write('H+', 0, 'latin1');
  h.writeUInt16BE(4, 2);
  h.writeUInt32BE(bs, 40);
  h.writeUInt32BE(size / bs, 44);
  volumeId.copy(h, 104);
  // Catalog fork: 8 KiB in blocks 2 and 3.
  h.writeBigUInt64BE(2n * BigInt(bs), 272);
  h.writeUInt32BE(2, 272 + 12);
  h.writeUInt32BE(2, 272 + 16);
  h.writeUInt32BE(2, 272 + 20);
  const header = img.subarray(2 * bs);
  header[8] = 1; // header node
  header.writeUInt16BE(3, 10);
  header.writeUInt16BE(1, 14); // depth
  header.writeUInt32BE(1, 16); // root node
  header.writeUInt32BE(1, 20); // leaf records
  header.writeUInt32BE(1, 24); // first leaf node
  header.writeUInt32BE(1, 28); // last leaf node
  header.writeUInt16BE(bs, 32); // node size
  const leaf = img.subarray(3 * bs);
  leaf[8] = 0xff; // leaf node
  leaf[9] = 1;
  leaf.writeUInt16BE(1, 10);
  const utf16 = Buffer.from(name, 'utf16le').swap16();
  leaf.writeUInt16BE(6 + utf16.length, 14);
  leaf.writeUInt32BE(1, 16); // parent: the root's parent
  leaf.writeUInt16BE(name.length, 20);
  utf16.copy(leaf, 22);
  writeFileSync(path, img);
}

/** Classic HFS: the Master Directory Block at 1 KiB with its Pascal-string label and Finder volume id. */
export function makeHfs(path: string, label: string, volumeId: Buffer, size = 2 * 1024 * 1024): void {
  const img = Buffer.alloc(size);
  const m = img.subarray(1024);
  m.write('BD', 0, 'latin1');
  m.writeUInt32BE(4096, 20);
  m[36] = label.length;
  m.write(label, 37, 'latin1');
  volumeId.copy(m, 116);
  writeFileSync(path, img);
}

/** BitLocker boot sectors: Vista, Windows 7 (with FVE metadata of `version` and a serial) or To Go. */
export function makeBitLocker(path: string, kind: 'vista' | 'win7' | 'togo', version = 2, serial = 0, size = 4 * 1024 * 1024): void {
  const img = Buffer.alloc(size);
  Buffer.from(kind === 'vista' ? 'eb5290' : 'eb5890', 'hex').copy(img, 0);
  img.write(kind === 'togo' ? 'MSWIN4.1' : '-FVE-FS-', 3, 'latin1');
  img.writeUInt16LE(512, 11);
  img[510] = 0x55;
  img[511] = 0xaa;
  const fve = 0x100000;
  if (kind !== 'vista') {
    img.writeBigUInt64LE(BigInt(fve), kind === 'win7' ? 176 : 440);
    if (kind === 'win7') img.writeUInt32LE(serial, 67);
    img.write('-FVE-FS-', fve, 'latin1');
    img.writeUInt16LE(480, fve + 8);
    img.writeUInt16LE(version, fve + 10);
  }
  writeFileSync(path, img);
}

/** A file of `size` zero bytes with `parts` ([offset, bytes]) written into it. */
export function makeWith(path: string, size: number, parts: [number, Buffer][]): void {
  const img = Buffer.alloc(size);
  for (const [at, b] of parts) b.copy(img, at);
  writeFileSync(path, img);
}

/** UFS2 (FreeBSD newfs): the superblock at 64 KiB, fs_id, volume name, magic at 1372 in `endian` order. */
export function ufs2Superblock(volname: string, id: [number, number], endian: 'le' | 'be'): Buffer {
  const s = Buffer.alloc(1376);
  const w = (v: number, o: number) => (endian === 'le' ? s.writeUInt32LE(v, o) : s.writeUInt32BE(v, o));
  w(id[0], 144);
  w(id[1], 148);
  s.write(volname, 680, 'latin1');
  w(0x19540119, 1372);
  return s;
}

/**
 * A raw disk with a GPT of `entries` entries (UEFI 2.x 5.3: protective MBR, primary header at LBA 1
 * and its entry array at LBA 2, backup array and header at the end, CRC-32 over each), of which the
 * first `partitions` hold Linux-data partitions of `sectorsEach` 512-byte sectors, back to back.
 * Sparse: only the tables are written.
 */
export function makeGpt(path: string, entries: number, partitions: number, sectorsEach = 8): void {
  const arraySectors = Math.ceil((entries * 128) / 512);
  const firstUsable = 2 + arraySectors;
  const total = firstUsable + partitions * sectorsEach + 2048 + arraySectors + 1;
  const parts = Array.from({ length: partitions }, (_, i) => ({
    firstLba: firstUsable + i * sectorsEach,
    lastLba: firstUsable + (i + 1) * sectorsEach - 1,
    type: '0fc63daf-8483-4772-8e79-3d69d8477de4',
    uuid: `${(i + 1).toString(16).padStart(8, '0')}-0000-0000-0000-00000000${(0x5eed).toString(16).padStart(4, '0')}`,
    name: `p${i + 1}`,
  }));
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, total * 512);
    for (const { offset, data } of serializeGpt(total, 512, '01234567-89ab-cdef-0123-456789abcdef', parts, entries)) {
      writeSync(fd, data, 0, data.length, offset);
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * A ZFS pool member's first vdev label as blkid reads it: the XDR name-value list at 16 KiB (pool
 * name, pool GUID, vdev GUID) and four uberblocks at 128 KiB carrying the SPA version.
 */
export function makeZfsMember(path: string, pool: string, poolGuid: bigint, version: bigint, size = 64 * 1024 * 1024): void {
  const pad4 = (n: number) => (n + 3) & ~3;
  const pair = (name: string, value: Buffer) => {
    const nameBytes = Buffer.alloc(pad4(name.length));
    nameBytes.write(name, 'latin1');
    const head = Buffer.alloc(12);
    head.writeUInt32BE(12 + nameBytes.length + value.length, 0);
    head.writeUInt32BE(name.length, 8);
    return Buffer.concat([head, nameBytes, value]);
  };
  const u64 = (n: bigint) => {
    const b = Buffer.alloc(16);
    b.writeUInt32BE(8, 0);
    b.writeUInt32BE(1, 4);
    b.writeBigUInt64BE(n, 8);
    return b;
  };
  const str = (s: string) => {
    const b = Buffer.alloc(12 + pad4(s.length));
    b.writeUInt32BE(9, 0);
    b.writeUInt32BE(1, 4);
    b.writeUInt32BE(s.length, 8);
    b.write(s, 12, 'latin1');
    return b;
  };
  const list = Buffer.concat([Buffer.alloc(12), pair('version', u64(version)), pair('name', str(pool)), pair('state', u64(0n)), pair('pool_guid', u64(poolGuid)), pair('guid', u64(42n))]);
  const img = Buffer.alloc(1024 * 1024);
  list.copy(img, 16 * 1024);
  for (let i = 0; i < 4; i++) {
    img.writeBigUInt64LE(0x00bab10cn, 128 * 1024 + i * 1024);
    img.writeBigUInt64LE(version, 128 * 1024 + i * 1024 + 8);
  }
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, size);
    writeSync(fd, img, 0, img.length, 0);
  } finally {
    closeSync(fd);
  }
}

/** A BeOS BFS volume's superblock and root inode, with the volume id in the inode's small data. */
export function makeBefs(path: string, name: string, volumeId: bigint, size = 4 * 1024 * 1024): void {
  const img = Buffer.alloc(size);
  const s = img.subarray(512);
  s.write(name, 0, 'latin1');
  s.writeUInt32LE(0x42465331, 32);
  s.writeUInt32LE(0x42494745, 36);
  s.writeUInt32LE(2048, 40);
  s.writeUInt32LE(11, 44);
  s.writeBigInt64LE(BigInt(size / 2048), 48);
  s.writeInt32LE(2048, 64);
  s.writeUInt32LE(0xdd121031, 68);
  s.writeInt32LE(8192, 72);
  s.writeInt32LE(13, 76);
  s.writeInt32LE(1, 80);
  s.writeUInt32LE(0x15b6830e, 112);
  // Root directory: allocation group 0, block 8, one block.
  s.writeInt32LE(0, 116);
  s.writeUInt16LE(8, 120);
  s.writeUInt16LE(1, 122);
  const inode = img.subarray(8 * 2048);
  inode.writeUInt32LE(0x3bbe0ad9, 0);
  inode.writeInt32LE(2048, 64);
  const sd = inode.subarray(232);
  sd.writeUInt32LE(0x554c4c47, 0);
  sd.writeUInt16LE(12, 4);
  sd.writeUInt16LE(8, 6);
  sd.write('be:volume_id', 8, 'latin1');
  sd.writeBigUInt64LE(volumeId, 8 + 12 + 3);
  writeFileSync(path, img);
}
