import { PositionalFile } from '../io/file.js';
import { lockFor } from '../io/lock.js';
import { VdiskError } from '../errors.js';
import { driverByName } from '../formats/drivers.js';
import { probeFile } from '../formats/open.js';
import type { CheckReport } from './check-report.js';

export type RepairMode = 'none' | 'leaks' | 'all';

export interface CheckOptions {
  /** The format (a name of the driver table) instead of probing. */
  format?: string;
  repair?: RepairMode;
  /** Units examined so far, of all (the first examination). */
  onProgress?: (done: number, total: number) => void;
  /** Look without the shared lock (-U); refused with a repair mode. */
  forceShare?: boolean;
}

/**
 * `check` (qemu-img check): the format's driver examines the file and, with a repair mode, fixes
 * what it can. A repair holds the exclusive lock from before the first examination to its last
 * write. A raw image has no structure to be inconsistent: its report has no findings and format raw
 * (the CLI says so and exits 63, as qemu-img does for formats without checks).
 */
export async function checkImage(path: string, options: CheckOptions = {}): Promise<CheckReport> {
  const repair = options.repair ?? 'none';
  const forced = options.format !== undefined ? driverByName(options.format) : null;
  const mode = repair === 'none' ? 'r' : 'rw';
  const file = await PositionalFile.open(path, mode, { lock: lockFor(mode, options.forceShare) });
  try {
    const driver = forced ?? (await probeFile(file));
    if (!driver.check) {
      if (driver.name === 'raw') return { filename: path, format: 'raw', 'check-errors': 0, corruptions: 0, leaks: 0, 'corruptions-fixed': 0, 'leaks-fixed': 0, findings: [] };
      throw new VdiskError('UNSUPPORTED', `${path}: vdisk cannot check ${driver.name} images`);
    }
    return await driver.check(file, { repair, onProgress: options.onProgress });
  } finally {
    await file.close();
  }
}
