import type { FilesystemDriver } from './filesystem.js';
import { udfDriver } from './udf/driver.js';

/**
 * The table of file-system readers, looked up by the type `mount-detect` reports. Adding a file system
 * is adding its folder and a row here; nothing else switches on a file system's name.
 */
export const FILESYSTEM_DRIVERS: FilesystemDriver[] = [udfDriver];

export function driverFor(type: string): FilesystemDriver | undefined {
  return FILESYSTEM_DRIVERS.find((d) => d.types.includes(type));
}
