import { VdiskError } from '../src/errors.js';
import { resizeImage } from '../src/ops/resize.js';
import { parseSize } from '../src/util/size.js';
import { formatOption } from './common.js';

export interface ResizeCommandOptions {
  format?: string;
  shrink?: boolean;
  quiet?: boolean;
}

export async function runResize(path: string, sizeText: string, opts: ResizeCommandOptions): Promise<number> {
  const m = /^([+-]?)(.*)$/.exec(sizeText) as RegExpExecArray;
  if (m[2] === '') throw new VdiskError('USAGE', 'missing required argument SIZE');
  const change = { sign: m[1] as '' | '+' | '-', bytes: parseSize(m[2], 'SIZE') };
  const r = await resizeImage(path, change, { format: formatOption(opts.format), shrink: opts.shrink });
  if (!opts.quiet) process.stdout.write(r.newSize === r.oldSize ? 'Image size unchanged.\n' : 'Image resized.\n');
  return 0;
}
