import { FORMAT_DRIVERS } from '../src/formats/drivers.js';
import { outputKind, printJson, stdout } from './common.js';
import { renderTable } from './table.js';

/** `vdisk formats`: the driver table, what vdisk does with each format (qemu-img --help's "Supported formats"). */
export async function runFormats(opts: { output?: string }): Promise<number> {
  const rows = FORMAT_DRIVERS.map((d) => ({
    name: d.name,
    aliases: [...(d.aliases ?? [])],
    description: d.description,
    read: d.open !== undefined,
    create: d.create !== undefined,
    check: d.check !== undefined,
    options: Object.keys(d.createOptions ?? {}),
  }));
  if (outputKind(opts.output) === 'json') {
    printJson({ formats: rows });
    return 0;
  }
  const yes = (b: boolean) => (b ? 'yes' : '-');
  const table = renderTable(
    ['format', 'read', 'create', 'check', 'description'],
    rows.map((r) => [r.name + (r.aliases.length ? ` (${r.aliases.join(', ')})` : ''), yes(r.read), yes(r.create), yes(r.check), r.description]),
  );
  stdout().write(table + '\n');
  return 0;
}
