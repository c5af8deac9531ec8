import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { havePeer, vdisk } from './peers.js';
import { openImage } from '../../src/formats/open.js';

const MiB = 1024 * 1024;

/**
 * The disk a VHDX chain shows through libvhdi: vhdimount (FUSE) mounts it and serves one file per
 * image of the chain, vhdi1 the base up to vhdiN the image named; that last one is read whole.
 */
export async function vhdimountRead(image: string, dir: string): Promise<Buffer> {
  const mnt = join(dir, `mnt-${Math.random().toString(36).slice(2)}`);
  mkdirSync(mnt);
  const child = spawn('vhdimount', ['-X', 'allow_root', image, mnt], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  try {
    for (let i = 0; i < 100 && !existsSync(join(mnt, 'vhdi1')); i++) await sleep(50);
    const files = readdirSync(mnt).filter((f) => /^vhdi\d+$/.test(f)).sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)));
    if (files.length === 0) throw new Error(`vhdimount served nothing for ${image}: ${err}`);
    return readFileSync(join(mnt, files[files.length - 1]));
  } finally {
    const umount = havePeer('fusermount') ? 'fusermount' : havePeer('fusermount3') ? 'fusermount3' : 'umount';
    spawnSync(umount, umount === 'umount' ? [mnt] : ['-u', mnt]);
  }
}

/** The sector (of `sector` bytes) where two disks first differ, or -1. */
export function firstDifferentSector(a: Buffer, b: Buffer, sector = 512): number {
  if (a.length !== b.length) return -2;
  for (let s = 0; s < a.length; s += sector) {
    if (!a.subarray(s, s + sector).equals(b.subarray(s, s + sector))) return s / sector;
  }
  return -1;
}

/** A VHDX of `size` with 1 MiB blocks holding `data` at 0, made by vdisk. */
export function vhdxWith(path: string, size: number, data: Buffer, blockSize = MiB): void {
  if (vdisk(['create', '-q', '-o', `block_size=${blockSize}`, path, String(size)]).code !== 0) throw new Error(`create ${path}`);
  if (data.length > 0 && vdisk(['write', path], { input: data }).code !== 0) throw new Error(`write ${path}`);
}

/** `vdisk write IMAGE --offset N` of `data`, asserting success. */
export function vdiskWrite(image: string, offset: number, data: Buffer): void {
  const r = vdisk(['write', image, '--offset', String(offset)], { input: data });
  if (r.code !== 0) throw new Error(`write ${image} at ${offset}: ${r.stderr}`);
}

/** Info's format-specific data. */
export function vhdxData(image: string): Record<string, any> {
  return JSON.parse(vdisk(['info', '--output', 'json', image]).stdout)['format-specific'].data;
}

/** The whole virtual disk, read in this process through the library (an image a test cut off is opened as a reader would). */
export async function readWhole(path: string, length?: number): Promise<Buffer> {
  const img = await openImage(path);
  try {
    const b = Buffer.alloc(length ?? img.virtualSize);
    await img.read(b, 0);
    return b;
  } finally {
    await img.close();
  }
}

/** The virtual size, as the library opens the image. */
export async function virtualSizeOf(path: string): Promise<number> {
  const img = await openImage(path);
  await img.close();
  return img.virtualSize;
}
