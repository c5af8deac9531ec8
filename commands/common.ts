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

export function printJson(doc: unknown): void {
  process.stdout.write(JSON.stringify(doc, null, 4) + '\n');
}
