import { openImage } from '../src/formats/open.js';
import { describeImage, type ImageInfo } from '../src/ops/info.js';
import { formatSize } from '../src/util/size.js';
import { formatOption, outputKind, printJson } from './common.js';
import { colours, type Styler } from './colour.js';

export interface InfoOptions {
  format?: string;
  forceShare?: boolean;
  output?: string;
}

export async function runInfo(path: string, opts: InfoOptions): Promise<number> {
  const kind = outputKind(opts.output);
  const image = await openImage(path, { format: formatOption(opts.format), forceShare: opts.forceShare });
  try {
    const info = await describeImage(image);
    if (kind === 'json') printJson(info);
    else process.stdout.write(renderInfo(info, (await colours()).out));
    return 0;
  } finally {
    await image.close();
  }
}

function renderInfo(info: ImageInfo, out: Styler): string {
  const lines = [
    `${out.bold('image:')} ${info.filename}`,
    `file format: ${info.format}`,
    `virtual size: ${formatSize(info['virtual-size'])} (${info['virtual-size']} bytes)`,
    `disk size: ${formatSize(info['actual-size'])}`,
  ];
  if (info['cluster-size'] !== undefined) lines.push(`cluster_size: ${info['cluster-size']}`);
  if (info['dirty-flag']) lines.push(out.yellow('dirty: yes (a pending log is shown replayed; the file is unchanged)'));
  const fs = info['format-specific'];
  if (fs) {
    lines.push('Format specific information:');
    render(fs.data, 1, lines);
  }
  return lines.join('\n') + '\n';
}

function render(value: Record<string, unknown>, depth: number, lines: string[]): void {
  const pad = '    '.repeat(depth);
  for (const [k, v] of Object.entries(value)) {
    if (Array.isArray(v)) {
      lines.push(`${pad}${k}:`);
      for (const item of v) lines.push(`${pad}    - ${String(item)}`);
    } else if (v !== null && typeof v === 'object') {
      lines.push(`${pad}${k}:`);
      render(v as Record<string, unknown>, depth + 1, lines);
    } else {
      lines.push(`${pad}${k}: ${String(v)}`);
    }
  }
}
