import { VdiskError } from '../src/errors.js';
import type { ImageFormat } from '../src/formats/image.js';

export type OutputKind = 'human' | 'json';

export function outputKind(value: string | undefined): OutputKind {
  if (value === undefined || value === 'human') return 'human';
  if (value === 'json') return 'json';
  throw new VdiskError('USAGE', `--output must be human or json, not '${value}'`);
}

export function formatOption(value: string | undefined, flag = '-f'): ImageFormat | undefined {
  if (value === undefined) return undefined;
  if (value === 'vhdx' || value === 'raw') return value;
  throw new VdiskError('USAGE', `${flag}: unknown image format '${value}' (vhdx, raw)`);
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
