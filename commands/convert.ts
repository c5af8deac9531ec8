import { openImage } from '../src/formats/open.js';
import { VdiskError } from '../src/errors.js';
import { convertImage } from '../src/ops/convert.js';
import { checkedOptions, creatingDriver } from '../src/ops/create.js';
import { cacheOption, formatOption, optionPairs, printedOptionsHelp } from './common.js';
import { version } from './version.js';
import { progressReporter } from './progress.js';

export interface ConvertCliOptions {
  format?: string;
  outputFormat?: string;
  options?: string[];
  cache?: string;
  forceShare?: boolean;
  quiet?: boolean;
  progress?: boolean;
  compress?: boolean;
}

export async function runConvert(source: string | undefined, output: string | undefined, opts: ConvertCliOptions): Promise<number> {
  const driver = creatingDriver(formatOption(opts.outputFormat, '-O') ?? 'raw', output ?? '', '-O');
  const list = opts.options ?? [];
  if (printedOptionsHelp(driver, list)) return 0;
  if (!source) throw new VdiskError('USAGE', 'missing required argument SOURCE');
  if (!output) throw new VdiskError('USAGE', 'missing required argument OUTPUT');
  const cache = cacheOption(opts.cache);
  // Checked before anything is opened, so a bad option leaves no output behind.
  const pairs = optionPairs(list);
  if (opts.compress) {
    // qemu-img's -c: the format's compressed output (an -o key of the formats that have one).
    if (!('compress' in (driver.createOptions ?? {}))) throw new VdiskError('USAGE', `-c: ${driver.name} images have no compressed form`);
    pairs.compress = 'on';
  }
  const options = checkedOptions(driver, pairs);
  const image = await openImage(source, { format: formatOption(opts.format), forceShare: opts.forceShare });
  try {
    const progress = progressReporter(opts, 'convert');
    const { notes } = await convertImage(image, output, {
      format: driver.name,
      options,
      creator: `vdisk v${version()}`,
      cache,
      onProgress: progress?.update,
    });
    progress?.finish();
    for (const note of notes) process.stderr.write(`vdisk: note: ${note}\n`);
  } finally {
    await image.close();
  }
  return 0;
}
