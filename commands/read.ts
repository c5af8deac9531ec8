import { openImage } from '../src/formats/open.js';
import { exportTo } from '../src/ops/export.js';
import { outputPlace, type OutputPlace } from '../src/io/output.js';
import { VdiskError } from '../src/errors.js';
import { parseSize } from '../src/util/size.js';
import { formatOption } from './common.js';
import { progressReporter } from './progress.js';

export interface ReadOptions {
  format?: string;
  forceShare?: boolean;
  offset?: string;
  length?: string;
  quiet?: boolean;
  progress?: boolean;
}

export async function runRead(path: string, output: string | undefined, opts: ReadOptions): Promise<number> {
  const offset = opts.offset !== undefined ? parseSize(opts.offset, '--offset') : 0;
  const length = opts.length !== undefined ? parseSize(opts.length, '--length') : undefined;
  const place: OutputPlace = output === undefined || output === '-' ? { kind: 'fd', fd: 1, name: 'stdout' } : await outputPlace(output);
  const image = await openImage(path, { format: formatOption(opts.format), forceShare: opts.forceShare });
  try {
    if (offset > image.virtualSize) {
      throw new VdiskError('RANGE', `${path}: --offset ${offset} is past the end of the virtual disk (${image.virtualSize} bytes)`);
    }
    const len = length ?? image.virtualSize - offset;
    if (offset + len > image.virtualSize) {
      throw new VdiskError(
        'RANGE',
        `${path}: --offset ${offset} --length ${len} runs past the end of the virtual disk (${image.virtualSize} bytes)`,
      );
    }
    const progress = progressReporter(opts, 'read');
    await exportTo(image, place, { offset, length: len, onProgress: progress?.update });
    progress?.finish();
    return 0;
  } finally {
    await image.close();
  }
}
