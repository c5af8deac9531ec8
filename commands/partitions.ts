import { openImage } from '../src/formats/open.js';
import { readPartitionTable } from '../src/partitions/detect.js';
import type { PartitionTable } from '../src/partitions/types.js';
import { formatSize } from '../src/util/size.js';
import { formatOption, outputKind, printJson } from './common.js';
import { renderTable } from './table.js';

export interface PartitionsOptions {
  format?: string;
  forceShare?: boolean;
  output?: string;
  quiet?: boolean;
}

export async function runPartitions(path: string, opts: PartitionsOptions): Promise<number> {
  const kind = outputKind(opts.output);
  const image = await openImage(path, { format: formatOption(opts.format), forceShare: opts.forceShare });
  let table: PartitionTable;
  try {
    table = await readPartitionTable(image);
  } finally {
    await image.close();
  }
  if (!opts.quiet) for (const w of table.warnings) process.stderr.write(`vdisk: warning: ${path}: ${w}\n`);
  if (kind === 'json') {
    printJson({ scheme: table.scheme, sectorSize: table.sectorSize, ...(table.id ? { id: table.id } : {}), partitions: table.partitions, warnings: table.warnings });
    return 0;
  }
  if (opts.quiet) return 0;
  if (!table.scheme) {
    process.stdout.write(`${path}: no partition table\n`);
    return 0;
  }
  const { out } = await (await import('./colour.js')).colours();
  process.stdout.write(`${out.bold('Disk')} ${path}: ${table.scheme.toUpperCase()}, ${table.sectorSize}-byte sectors${table.id ? `, id ${table.id}` : ''}\n`);
  const gpt = table.scheme === 'gpt';
  const named = table.partitions.some((p) => p.name);
  const head = ['#', 'Start', 'End', 'Sectors', 'Size', 'Type', 'Description', ...(gpt ? ['Name', 'UUID'] : ['Boot', ...(named ? ['Name'] : [])])];
  const rows = table.partitions.map((p) => {
    const s = table.sectorSize;
    const row = [
      String(p.index) + (p.parent !== undefined ? ` (in ${p.parent})` : ''),
      String(p.start / s),
      String((p.start + p.size) / s - 1),
      String(p.size / s),
      formatSize(p.size),
      p.type,
      p.description,
    ];
    if (gpt) row.push(p.name ?? '', p.uuid ?? '');
    else row.push(p.bootable ? '*' : '', ...(named ? [p.name ?? ''] : []));
    return row;
  });
  process.stdout.write(renderTable(head, rows, out.cyan) + '\n');
  return 0;
}
