import { openImage } from '../src/formats/open.js';
import { VdiskError } from '../src/errors.js';
import { compareImages } from '../src/ops/compare.js';
import type { DiskImage } from '../src/formats/image.js';
import { formatOption } from './common.js';
import { progressReporter } from './progress.js';

export interface CompareCliOptions {
  format?: string;
  secondFormat?: string;
  strict?: boolean;
  forceShare?: boolean;
  quiet?: boolean;
  progress?: boolean;
}

/**
 * `vdisk compare`: qemu-img compare's messages and exit codes: 0 identical, 1 different, 2 when an
 * image cannot be read (usage errors stay 1, as everywhere).
 */
export async function runCompare(first: string, second: string, opts: CompareCliOptions): Promise<number> {
  const f1 = formatOption(opts.format);
  const f2 = formatOption(opts.secondFormat, '-F');
  const say = (s: string) => {
    if (!opts.quiet) process.stdout.write(`${s}\n`);
  };
  const opened: DiskImage[] = [];
  try {
    opened.push(await openImage(first, { format: f1, forceShare: opts.forceShare }));
    opened.push(await openImage(second, { format: f2, forceShare: opts.forceShare }));
    const [a, b] = opened;
    const progress = progressReporter(opts, 'compare');
    const r = await compareImages(a, b, { strict: opts.strict, onProgress: progress?.update });
    progress?.finish();
    // As qemu-img: strict mode refuses different sizes first; otherwise the warning comes only once
    // the common part matched and the larger image's tail is being looked at.
    const common = Math.min(a.virtualSize, b.virtualSize);
    if (r.sizeMismatch && (opts.strict || r.mismatchAt === undefined || r.mismatchAt >= common)) {
      say(opts.strict ? 'Strict mode: Image size mismatch!' : 'Warning: Image size mismatch!');
    }
    if (r.mismatchAt !== undefined) say(`Content mismatch at offset ${r.mismatchAt}!`);
    if (r.identical) say('Images are identical.');
    return r.identical ? 0 : 1;
  } catch (err) {
    if (!(err instanceof VdiskError) || err.code === 'USAGE') throw err;
    process.stderr.write(`vdisk: ${err.message}\n`);
    return 2;
  } finally {
    for (const img of opened) await img.close();
  }
}
