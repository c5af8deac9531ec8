import { commitImage } from '../src/ops/commit.js';
import { formatOption } from './common.js';
import { progressReporter } from './progress.js';

export interface CommitCommandOptions {
  format?: string;
  d?: boolean;
  progress?: boolean;
  quiet?: boolean;
}

export async function runCommit(path: string, opts: CommitCommandOptions): Promise<number> {
  const progress = progressReporter(opts, 'commit');
  await commitImage(path, { format: formatOption(opts.format), keepChild: opts.d, onProgress: progress?.update });
  progress?.finish();
  if (!opts.quiet) process.stdout.write('Image committed.\n');
  return 0;
}
