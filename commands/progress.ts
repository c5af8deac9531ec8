import { formatSize } from '../src/util/size.js';

export interface Progress {
  update: (done: number, total: number) => void;
  finish: () => void;
}

/**
 * `-p`: one self-rewriting line on stderr with rate and time left, only when stderr is a terminal; a
 * total below zero means unknown (counts and rate only).
 */
export function progressReporter(opts: { progress?: boolean; quiet?: boolean }, verb: string, unit = verb === 'check' ? 'BAT entries' : 'bytes'): Progress | null {
  if (!opts.progress || opts.quiet || !process.stderr.isTTY) return null;
  const started = Date.now();
  let last = 0;
  let shown = false;
  const draw = (done: number, total: number) => {
    const secs = (Date.now() - started) / 1000;
    if (total < 0) {
      // The total is not known ahead (a tree being walked): counts and rate only.
      const amount = unit === 'bytes' ? `${formatSize(done)}  ${formatSize(secs > 0 ? done / secs : 0)}/s` : `${done} ${unit}`;
      process.stderr.write(`\r${verb}: ${amount}\x1b[K`);
      shown = true;
      return;
    }
    const rate = secs > 0 ? done / secs : 0;
    const left = rate > 0 ? Math.max(0, (total - done) / rate) : 0;
    const pct = total > 0 ? ((100 * done) / total).toFixed(1) : '100.0';
    // Byte counts for read and write; check counts BAT entries.
    const amount = unit === 'bytes' ? `${formatSize(done)} of ${formatSize(total)}  ${formatSize(rate)}/s` : `${done} of ${total} ${unit}`;
    process.stderr.write(`\r${verb}: ${pct.padStart(5)}%  ${amount}  ${Math.ceil(left)}s left\x1b[K`);
    shown = true;
  };
  return {
    update(done, total) {
      const now = Date.now();
      if (now - last < 200 && (total < 0 || done < total)) return;
      last = now;
      draw(done, total);
    },
    finish() {
      if (shown) process.stderr.write('\n');
    },
  };
}
