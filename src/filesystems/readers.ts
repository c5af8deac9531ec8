import type { FilesystemDriver } from './filesystem.js';
import { exfatDriver } from './exfat/driver.js';
import { iso9660Driver } from './iso9660/driver.js';
import { udfDriver } from './udf/driver.js';
import { ntfsDriver } from './ntfs/driver.js';
import { fatDriver } from './fat/driver.js';
import { extDriver } from './ext/driver.js';
import { xfsDriver } from './xfs/driver.js';
import { squashfsDriver } from './squashfs/driver.js';

/**
 * The table of file-system readers, looked up by the type `mount-detect` reports. Adding a file system
 * is adding its folder and a row here; nothing else switches on a file system's name.
 */
export const FILESYSTEM_DRIVERS: FilesystemDriver[] = [exfatDriver, iso9660Driver, udfDriver, ntfsDriver, fatDriver, extDriver, xfsDriver, squashfsDriver];

export function driverFor(type: string): FilesystemDriver | undefined {
  return FILESYSTEM_DRIVERS.find((d) => d.types.includes(type));
}
