import { VdiskError } from '../src/errors.js';
import { checkImage, type RepairMode } from '../src/ops/check.js';
import { exitCodeOf, type CheckReport } from '../src/ops/check-report.js';
import { formatOption, outputKind, printJson } from './common.js';
import { progressReporter } from './progress.js';

export interface CheckCommandOptions {
  format?: string;
  output?: string;
  repair?: string;
  forceShare?: boolean;
  quiet?: boolean;
  progress?: boolean;
}

/** qemu-img check's exit code when the format has no checks (raw). */
const RAW_CHECK_EXIT = 63;

export async function runCheck(path: string, opts: CheckCommandOptions): Promise<number> {
  const kind = outputKind(opts.output);
  let repair: RepairMode = 'none';
  if (opts.repair !== undefined) {
    if (opts.repair !== 'leaks' && opts.repair !== 'all') {
      throw new VdiskError('USAGE', `-r must be leaks or all, not '${opts.repair}'`);
    }
    repair = opts.repair;
    if (opts.forceShare) throw new VdiskError('USAGE', '-U cannot be used with -r: a repair always locks the image');
  }
  let r: CheckReport;
  try {
    const progress = progressReporter(opts, 'check');
    r = await checkImage(path, { format: formatOption(opts.format), repair, forceShare: opts.forceShare, onProgress: progress?.update });
    progress?.finish();
  } catch (err) {
    if (!(err instanceof VdiskError) || err.code === 'USAGE') throw err;
    // The check could not complete: qemu-img's exit code 1, with the reason.
    r = { filename: path, format: opts.format ?? 'vhdx', 'check-errors': 1, corruptions: 0, leaks: 0, 'corruptions-fixed': 0, 'leaks-fixed': 0, findings: [], error: err.message };
    if (kind === 'json') printJson(r);
    else process.stderr.write(`vdisk: ${err.message}\n`);
    return 1;
  }
  if (r.format === 'raw') {
    // qemu-img's answer and exit code for a format with no structure to check.
    process.stderr.write(`vdisk: ${path}: This image format does not support checks\n`);
    return RAW_CHECK_EXIT;
  }
  if (kind === 'json') printJson(r);
  else if (!opts.quiet) process.stdout.write(await renderHuman(r));
  return exitCodeOf(r);
}

async function renderHuman(r: CheckReport): Promise<string> {
  const { out } = await (await import('./colour.js')).colours();
  const lines: string[] = [];
  for (const f of r.findings) {
    const tag = f.fixed ? out.green('Repaired:') : f.severity === 'corruption' ? out.red('ERROR') : f.severity === 'leak' ? out.yellow('Leaked') : 'Warning:';
    lines.push(`${tag} ${f.structure}${f.entry !== undefined ? ` entry ${f.entry}` : ''} at offset ${f.offset}: ${f.message}`);
  }
  if (r['unlisted-findings']) lines.push(`... and ${r['unlisted-findings']} more findings not listed`);
  if (lines.length) lines.push('');
  if (r['corruptions-fixed'] || r['leaks-fixed']) {
    lines.push('The following inconsistencies were found and repaired:', '');
    lines.push(`    ${r['leaks-fixed']} leaked areas`, `    ${r['corruptions-fixed']} corruptions`, '');
  }
  if (r.corruptions) {
    lines.push(`${r.corruptions} errors were found on the image.`, 'Data may be corrupted, or further writes to the image may corrupt it.');
  }
  if (r.leaks) lines.push(`${r.leaks} leaked areas were found on the image.`, 'This means waste of disk space, but no harm to data.');
  if (!r.corruptions && !r.leaks) lines.push('No errors were found on the image.');
  if (r['allocated-blocks'] !== undefined && r['total-blocks']) {
    const pct = ((100 * r['allocated-blocks']) / r['total-blocks']).toFixed(2);
    lines.push(`${r['allocated-blocks']}/${r['total-blocks']} = ${pct}% allocated`);
  }
  if (r['image-end-offset'] !== undefined) lines.push(`Image end offset: ${r['image-end-offset']}`);
  return lines.join('\n') + '\n';
}
