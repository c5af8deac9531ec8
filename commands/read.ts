import { isatty } from 'node:tty';
import { openImage } from '../src/formats/open.js';
import { exportImage } from '../src/export.js';
import { refuseSameFile } from '../src/convert.js';
import { VdiskError } from '../src/errors.js';
import { parseSize } from '../src/util/size.js';
import { formatOption } from './common.js';
import { progressReporter } from './progress.js';

export interface ReadOptions {
  format?: string;
  offset?: string;
  length?: string;
  quiet?: boolean;
  progress?: boolean;
}

export async function runRead(path: string, output: string | undefined, opts: ReadOptions): Promise<number> {
  const offset = opts.offset !== undefined ? parseSize(opts.offset, '--offset') : 0;
  const length = opts.length !== undefined ? parseSize(opts.length, '--length') : undefined;
  const toStdout = output === undefined || output === '-';
  // tty.isatty, not process.stdout.isTTY: touching process.stdout makes fd 1 non-blocking, and the
  // export writes to fd 1 directly.
  if (toStdout && isatty(1)) {
    throw new VdiskError('USAGE', 'refusing to write disk bytes to a terminal; name an OUTPUT file or redirect stdout');
  }
  if (!toStdout) await refuseSameFile(path, output);
  const image = await openImage(path, { format: formatOption(opts.format) });
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
    await exportImage(image, toStdout ? { kind: 'fd', fd: 1, name: 'stdout' } : { kind: 'file', path: output }, {
      offset,
      length: len,
      onProgress: progress?.update,
    });
    progress?.finish();
    return 0;
  } finally {
    await image.close();
  }
}
