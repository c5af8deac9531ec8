import { openImage } from '../src/formats/open.js';
import { mapImage, type MapExtent } from '../src/ops/map.js';
import { formatOption, outputKind } from './common.js';

export interface MapOptions {
  format?: string;
  forceShare?: boolean;
  output?: string;
}

/**
 * `vdisk map`: qemu-img map's two shapes. JSON is one extent per line in one array, written as the
 * map is walked; human lists only the extents stored in a file, with where they are.
 */
export async function runMap(path: string, opts: MapOptions): Promise<number> {
  const kind = outputKind(opts.output);
  const image = await openImage(path, { format: formatOption(opts.format), forceShare: opts.forceShare });
  const pending: string[] = [];
  let size = 0;
  const write = (s: string) => {
    pending.push(s);
    size += s.length;
    if (size >= 64 * 1024) flush();
  };
  const flush = () => {
    if (pending.length) process.stdout.write(pending.join(''));
    pending.length = 0;
    size = 0;
  };
  try {
    let first = true;
    if (kind === 'json') write('[');
    else write(`${'Offset'.padEnd(16)}${'Length'.padEnd(16)}${'Mapped to'.padEnd(16)}File\n`);
    await mapImage(image, (e) => {
      if (kind === 'json') {
        write(`${first ? '' : ',\n'}${JSON.stringify(jsonOf(e))}`);
        first = false;
      } else if (e.data && e.offset !== undefined) {
        write(`${hex(e.start)}${hex(e.length)}${hex(e.offset)}${e.filename}\n`);
      }
    });
    if (kind === 'json') write(']\n');
    flush();
    return 0;
  } finally {
    await image.close();
  }
}

function jsonOf(e: MapExtent): Record<string, unknown> {
  const o: Record<string, unknown> = { start: e.start, length: e.length, depth: e.depth, present: e.present, zero: e.zero, data: e.data };
  if (e.offset !== undefined) o.offset = e.offset;
  return o;
}

/** As printf's %#-16x: 0x-prefixed except for zero, left-aligned in 16 columns. */
function hex(n: number): string {
  return (n === 0 ? '0' : `0x${n.toString(16)}`).padEnd(16);
}
