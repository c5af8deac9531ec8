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

export function printJson(doc: unknown): void {
  process.stdout.write(JSON.stringify(doc, null, 4) + '\n');
}
