import { compactImage } from '../src/ops/compact.js';
import { formatSize } from '../src/util/size.js';
import { formatOption, outputKind } from './common.js';
import { progressReporter } from './progress.js';

export interface CompactCommandOptions {
  format?: string;
  zerosOnly?: boolean;
  dryRun?: boolean;
  progress?: boolean;
  quiet?: boolean;
  output?: string;
}

export async function runCompact(path: string, opts: CompactCommandOptions): Promise<number> {
  const kind = outputKind(opts.output);
  const progress = progressReporter(opts, 'compact', 'blocks');
  const r = await compactImage(path, { format: formatOption(opts.format), zerosOnly: opts.zerosOnly, dryRun: opts.dryRun, onProgress: progress?.update });
  progress?.finish();
  const given = r.fileBytesBefore - r.fileBytesAfter;
  if (kind === 'json') {
    process.stdout.write(`${JSON.stringify({ ...r, bytesGivenBack: given, dryRun: opts.dryRun ?? false }, null, 2)}\n`);
    return 0;
  }
  if (opts.quiet) return 0;
  for (const s of r.volumesSkipped) process.stderr.write(`vdisk: warning: ${path}: free space not used for ${s}\n`);
  const verb = opts.dryRun ? 'would give back' : 'gave back';
  process.stdout.write(
    `${path}: ${verb} ${formatSize(given)} (${given} bytes): ${formatSize(r.fileBytesBefore)} -> ${formatSize(r.fileBytesAfter)}; ` +
      `of ${r.blocksStored} stored blocks ${r.blocksFree} in free space and ${r.blocksZero} of zeros dropped, ${r.blocksMoved} moved` +
      `${r.volumesUsed.length ? `; free space of ${r.volumesUsed.join(', ')}` : ''}\n`,
  );
  return 0;
}
