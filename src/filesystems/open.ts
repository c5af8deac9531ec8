import { VdiskError } from '../errors.js';
import type { DiskImage } from '../formats/image.js';
import { sectorReader } from '../partitions/detect.js';
import { detectVolumes, volumeReader, type Volume } from './detect.js';
import { Filesystem } from './filesystem.js';
import { driverFor } from './readers.js';

export interface OpenFilesystemOptions {
  /** The partition number as `partitions` lists it; absent: the disk's only file system. */
  partition?: number;
}

function describe(v: Volume): string {
  const where = v.partition === null ? 'the whole disk' : `partition ${v.partition}`;
  return `${where} (${v.filesystem ?? 'no file system'})`;
}

/**
 * Opens the file system `mount-detect` reports on the disk or on one partition. The image stays open
 * and owned by the caller; closing the Filesystem does not close it.
 */
export async function openFilesystem(image: DiskImage, options: OpenFilesystemOptions = {}): Promise<Filesystem> {
  const { volumes, warnings } = await detectVolumes(image);
  let volume: Volume | undefined;
  if (options.partition !== undefined) {
    volume = volumes.find((v) => v.partition === options.partition);
    if (!volume) {
      const known = volumes.filter((v) => v.partition !== null).map((v) => v.partition);
      throw new VdiskError('NOT_FOUND', `${image.filename}: no partition ${options.partition}` +
        (known.length ? ` (partitions: ${known.join(', ')})` : ' (the disk has no partition table)'));
    }
  } else {
    const withFs = volumes.filter((v) => v.filesystem !== null);
    if (withFs.length === 1) volume = withFs[0];
    else if (withFs.length === 0) throw new VdiskError('NOT_FOUND', `${image.filename}: no file system found on the disk or its partitions`);
    else {
      throw new VdiskError('USAGE', `${image.filename}: several file systems; choose one with -P: ${withFs.map(describe).join(', ')}`);
    }
  }
  const where = volume.partition === null ? image.filename : `${image.filename} partition ${volume.partition}`;
  if (volume.filesystem === null) throw new VdiskError('NOT_FOUND', `${where}: no file system found`);
  const driver = driverFor(volume.filesystem);
  if (!driver) throw new VdiskError('UNSUPPORTED', `${where}: ${volume.filesystem} file systems cannot be opened yet`);
  const data = volumeReader(sectorReader(image), volume.offset, volume.size);
  const reader = await driver.open(data, { name: where });
  const fs = new Filesystem(reader, where, data);
  fs.warnings.unshift(...warnings.filter((w) => volume.partition === null || w.startsWith(`partition ${volume.partition}:`) || !w.startsWith('partition ')));
  return fs;
}
