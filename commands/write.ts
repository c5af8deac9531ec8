import { openImage } from '../src/formats/open.js';
import { importIntoImage } from '../src/ops/import.js';
import { parseSize } from '../src/util/size.js';
import { cacheOption, formatOption } from './common.js';
import { progressReporter } from './progress.js';

export interface WriteOptions {
  format?: string;
  offset?: string;
  quiet?: boolean;
  progress?: boolean;
  cache?: string;
}

export async function runWrite(path: string, input: string | undefined, opts: WriteOptions): Promise<number> {
  const offset = opts.offset !== undefined ? parseSize(opts.offset, '--offset') : 0;
  const cache = cacheOption(opts.cache);
  const image = await openImage(path, { format: formatOption(opts.format), mode: 'rw', cache });
  try {
    const progress = progressReporter(opts, 'write');
    const source = input === undefined || input === '-' ? { kind: 'fd' as const, fd: 0, name: 'stdin' } : { kind: 'file' as const, path: input };
    await importIntoImage(image, source, { offset, onProgress: progress?.update });
    progress?.finish();
  } finally {
    await image.close();
  }
  return 0;
}
