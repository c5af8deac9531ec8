import { VdiskError } from '../src/errors.js';
import { rebaseImage } from '../src/ops/rebase.js';
import { formatOption } from './common.js';
import { progressReporter } from './progress.js';

export interface RebaseCommandOptions {
  format?: string;
  backingFile?: string;
  backingFormat?: string;
  unsafe?: boolean;
  progress?: boolean;
  quiet?: boolean;
}

export async function runRebase(path: string, opts: RebaseCommandOptions): Promise<number> {
  if (!opts.backingFile) throw new VdiskError('USAGE', 'rebase needs -b NEWPARENT (vdisk cannot make a child stand alone; convert it instead)');
  const progress = progressReporter(opts, 'rebase');
  await rebaseImage(path, opts.backingFile, { format: formatOption(opts.format), backingFormat: formatOption(opts.backingFormat, '-F'), unsafe: opts.unsafe, onProgress: progress?.update });
  progress?.finish();
  return 0;
}
