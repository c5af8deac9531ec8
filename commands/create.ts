import { VdiskError } from '../src/errors.js';
import { createImage, creatingDriver } from '../src/ops/create.js';
import { parseSize } from '../src/util/size.js';
import { formatOption, optionPairs, printedOptionsHelp } from './common.js';
import { version } from './version.js';

export interface CreateOptions {
  format?: string;
  options?: string[];
  backingFile?: string;
  backingFormat?: string;
  quiet?: boolean;
}

export async function runCreate(path: string | undefined, sizeText: string | undefined, opts: CreateOptions): Promise<number> {
  const list = opts.options ?? [];
  // As with qemu-img's habit of naming raw images .img: the name chooses the format unless -f says otherwise.
  const driver = creatingDriver(formatOption(opts.format), path ?? '');
  if (printedOptionsHelp(driver, list)) return 0;
  if (!path) throw new VdiskError('USAGE', 'missing required argument IMAGE');
  if (!sizeText && !opts.backingFile) throw new VdiskError('USAGE', 'missing required argument SIZE');
  const size = sizeText ? parseSize(sizeText, 'SIZE') : undefined;
  const made = await createImage(path, {
    format: driver.name,
    size,
    options: optionPairs(list),
    creator: `vdisk v${version()}`,
    ...(opts.backingFile ? { backing: { path: opts.backingFile, format: formatOption(opts.backingFormat, '-F') } } : {}),
  });
  for (const note of made.notes) process.stderr.write(`vdisk: note: ${note}\n`);
  if (!opts.quiet) process.stdout.write(`Formatting '${path}', fmt=${made.format} size=${made.size}\n`);
  return 0;
}
