import { openImage } from '../src/formats/open.js';
import { detectVolumes } from '../src/filesystems/detect.js';
import { formatSize } from '../src/util/size.js';
import { formatOption, outputKind, printJson } from './common.js';
import { renderTable } from './table.js';

export interface MountDetectOptions {
  format?: string;
  forceShare?: boolean;
  output?: string;
  quiet?: boolean;
}

export async function runMountDetect(path: string, opts: MountDetectOptions): Promise<number> {
  const kind = outputKind(opts.output);
  const image = await openImage(path, { format: formatOption(opts.format), forceShare: opts.forceShare });
  let result;
  try {
    result = await detectVolumes(image);
  } finally {
    await image.close();
  }
  for (const w of result.warnings) process.stderr.write(`vdisk: warning: ${path}: ${w}\n`);
  if (kind === 'json') {
    printJson({ volumes: result.volumes, warnings: result.warnings });
    return 0;
  }
  if (opts.quiet) return 0;
  const { out } = await (await import('./colour.js')).colours();
  const head = ['Partition', 'Offset', 'Size', 'Filesystem', 'Version', 'Label', 'UUID'];
  const rows = result.volumes.map((v) => [
    v.partition === null ? '(disk)' : String(v.partition), String(v.offset), formatSize(v.size), v.filesystem ?? '-', v.version ?? '', v.label ?? '', v.uuid ?? '',
  ]);
  process.stdout.write(renderTable(head, rows, out.cyan) + '\n');
  return 0;
}
