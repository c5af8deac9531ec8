import { VdiskError } from '../src/errors.js';
import { openImage } from '../src/formats/open.js';
import { driverByName } from '../src/formats/drivers.js';
import { measureImage } from '../src/ops/measure.js';
import { parseSize } from '../src/util/size.js';
import { formatOption, optionPairs, outputKind, printJson, printedOptionsHelp, stdout } from './common.js';

export interface MeasureCliOptions {
  format?: string;
  outputFormat?: string;
  options?: string[];
  output?: string;
  size?: string;
  forceShare?: boolean;
}

/** `vdisk measure`: qemu-img measure's two lines, or its JSON keys. */
export async function runMeasure(source: string | undefined, opts: MeasureCliOptions): Promise<number> {
  const kind = outputKind(opts.output);
  const driver = driverByName(formatOption(opts.outputFormat, '-O') ?? 'raw', '-O');
  const list = opts.options ?? [];
  if (printedOptionsHelp(driver, list)) return 0;
  // qemu-img's wording for the two ways of asking wrong.
  if (source !== undefined && opts.size !== undefined) throw new VdiskError('USAGE', '--size N cannot be used together with a filename');
  if (source === undefined && opts.size === undefined) throw new VdiskError('USAGE', 'either --size N or one filename must be specified');
  const options = optionPairs(list);
  const size = opts.size !== undefined ? parseSize(opts.size, '--size') : undefined;
  const image = source !== undefined ? await openImage(source, { format: formatOption(opts.format), forceShare: opts.forceShare }) : undefined;
  try {
    const m = await measureImage({ format: driver.name, options, ...(image ? { source: image } : { size }) });
    if (kind === 'json') printJson(m);
    else stdout().write(`required size: ${m.required}\nfully allocated size: ${m['fully-allocated']}\n`);
    return 0;
  } finally {
    await image?.close();
  }
}
