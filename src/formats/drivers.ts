import { VdiskError } from '../errors.js';
import type { FormatDriver, ProbeInput } from './driver.js';
import { rawDriver } from './raw/driver.js';
import { vhdxDriver } from './vhdx/driver.js';
import { vdiDriver } from './vdi/driver.js';
import { qcow2Driver } from './qcow2/driver.js';
import { vpcDriver } from './vpc/driver.js';
import { vmdkDriver } from './vmdk/driver.js';
import { FOREIGN_DRIVERS } from './foreign.js';

/**
 * THE table of format drivers. A readable format's row replaces its row in FOREIGN_DRIVERS (the
 * first row of a name wins), so a format is never both read and refused.
 */
export const FORMAT_DRIVERS: readonly FormatDriver[] = dedupe([vhdxDriver, vpcDriver, qcow2Driver, vmdkDriver, vdiDriver, ...FOREIGN_DRIVERS, rawDriver]);

function dedupe(rows: FormatDriver[]): FormatDriver[] {
  const seen = new Set<string>();
  return rows.filter((d) => !seen.has(d.name) && seen.add(d.name));
}

/** The formats vdisk reads, by name: for help texts and messages. */
export function readableFormats(): string[] {
  return FORMAT_DRIVERS.filter((d) => d.open).map((d) => d.name);
}

/** The driver `-f`/`-O` names (a name or an alias), refusing unknown names and formats vdisk cannot read. */
export function driverByName(name: string, flag = '-f'): FormatDriver {
  const d = FORMAT_DRIVERS.find((x) => x.name === name || x.aliases?.includes(name));
  if (!d) throw new VdiskError('USAGE', `${flag}: unknown image format '${name}' (${readableFormats().join(', ')})`);
  if (!d.open) throw new VdiskError('UNSUPPORTED', `${flag} ${name}: vdisk does not read ${d.description} images yet (it reads ${readableFormats().join(', ')})`);
  return d;
}

/** The best-scoring driver for a file's first and last bytes; raw (score 1) when nothing claims it. */
export function probeDriver(p: ProbeInput): FormatDriver {
  let best = rawDriver;
  let bestScore = 0;
  for (const d of FORMAT_DRIVERS) {
    const score = d.probe(p);
    if (score > bestScore) {
      best = d;
      bestScore = score;
    }
  }
  return best;
}

/** The driver `create` picks for a path without -f: by its ending, else VHDX. */
export function driverForNewFile(path: string): FormatDriver {
  const lower = path.toLowerCase();
  return FORMAT_DRIVERS.find((d) => d.create && d.extensions?.some((e) => lower.endsWith(e))) ?? vhdxDriver;
}
