import { VdiskError } from '../src/errors.js';
import type { ImageFormat } from '../src/formats/image.js';
import type { FormatDriver } from '../src/formats/driver.js';
import { driverByName } from '../src/formats/drivers.js';

export type OutputKind = 'human' | 'json';

export function outputKind(value: string | undefined): OutputKind {
  if (value === undefined || value === 'human') return 'human';
  if (value === 'json') return 'json';
  throw new VdiskError('USAGE', `--output must be human or json, not '${value}'`);
}

/** `-f`/`-O`: a format of the driver table (its name or an alias), as the table names it. */
export function formatOption(value: string | undefined, flag = '-f'): ImageFormat | undefined {
  if (value === undefined) return undefined;
  return driverByName(value, flag).name;
}

/** `-o key=value,key=value` (repeatable) as pairs; a key without `=value` is refused by the driver's check. */
export function optionPairs(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of list.flatMap((s) => s.split(',')).filter((s) => s !== '')) {
    const eq = pair.indexOf('=');
    if (eq < 0) throw new VdiskError('USAGE', `-o ${pair}: needs a value (${pair}=...)`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

/** `-o help` (create and convert): lists the format's options and tells the caller to stop there. */
export function printedOptionsHelp(driver: FormatDriver, list: string[]): boolean {
  if (!list.some((s) => s.split(',').includes('help'))) return false;
  const options = Object.entries(driver.createOptions ?? {});
  if (options.length === 0) process.stdout.write(`${driver.name} images take no options\n`);
  else {
    process.stdout.write(`Supported options for ${driver.name}:\n`);
    for (const [k, v] of options) process.stdout.write(`  ${k.padEnd(22)} ${v}\n`);
  }
  return true;
}

/** `-t`: writeback (every flush honoured) or unsafe (none), for the commands that write. */
export function cacheOption(value: string | undefined): 'writeback' | 'unsafe' | undefined {
  if (value === undefined || value === 'writeback' || value === 'unsafe') return value;
  throw new VdiskError('USAGE', `-t must be writeback or unsafe, not '${value}'`);
}

let guarded = false;

/**
 * process.stdout for text output, with a reader that went away (`vdisk ls -R | head`) ending the command
 * quietly, as for any Unix filter, instead of in an unhandled EPIPE. Touched only by commands that print
 * text: merely creating process.stdout makes fd 1 non-blocking, which `read` into a pipe must avoid.
 */
export function stdout(): NodeJS.WriteStream {
  if (!guarded) {
    guarded = true;
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(0);
      throw err;
    });
  }
  return process.stdout;
}

export function printJson(doc: unknown): void {
  stdout().write(JSON.stringify(doc, null, 4) + '\n');
}
