import { openImage } from '../src/formats/open.js';
import { VdiskError } from '../src/errors.js';
import { convertImage } from '../src/convert.js';
import { cacheOption, formatOption } from './common.js';
import { newImageOptions, printedOptionsHelp } from './create.js';
import { progressReporter } from './progress.js';

export interface ConvertCliOptions {
  format?: string;
  outputFormat?: string;
  options?: string[];
  cache?: string;
  forceShare?: boolean;
  quiet?: boolean;
  progress?: boolean;
}

export async function runConvert(source: string | undefined, output: string | undefined, opts: ConvertCliOptions): Promise<number> {
  const outFormat = formatOption(opts.outputFormat, '-O') ?? 'raw';
  const list = opts.options ?? [];
  if (printedOptionsHelp(outFormat, list)) return 0;
  if (!source) throw new VdiskError('USAGE', 'missing required argument SOURCE');
  if (!output) throw new VdiskError('USAGE', 'missing required argument OUTPUT');
  const cache = cacheOption(opts.cache);
  // Parsed before anything is opened, so a bad option leaves no output behind.
  const vhdx = newImageOptions(outFormat, list) ?? undefined;
  const image = await openImage(source, { format: formatOption(opts.format), forceShare: opts.forceShare });
  try {
    const progress = progressReporter(opts, 'convert');
    await convertImage(image, output, {
      format: outFormat,
      vhdx,
      cache,
      onProgress: progress?.update,
    });
    progress?.finish();
  } finally {
    await image.close();
  }
  return 0;
}
