import type { FsStats, FsTime } from '../src/filesystems/filesystem.js';
import { outputKind, printJson } from './common.js';
import { withVolume, type VolumeOptions } from './volume.js';

export interface LsOptions extends VolumeOptions {
  long?: boolean;
  recursive?: boolean;
  all?: boolean;
  output?: string;
}

interface Listed {
  path: string;
  name: string;
  stats: FsStats;
  target?: string;
}

const TYPE_CHAR: Record<FsStats['type'], string> = {
  file: '-', directory: 'd', symlink: 'l', block: 'b', char: 'c', fifo: 'p', socket: 's', other: '?',
};

/** `-rwxr-xr-x` with set-id and sticky bits, as ls -l shows modes. */
export function modeString(st: FsStats): string {
  const m = st.mode;
  const rwx = (shift: number, special: boolean, on: string, off: string) =>
    (m & (4 << shift) ? 'r' : '-') + (m & (2 << shift) ? 'w' : '-') + (special ? (m & (1 << shift) ? on : off) : m & (1 << shift) ? 'x' : '-');
  return TYPE_CHAR[st.type] + rwx(6, !!(m & 0o4000), 's', 'S') + rwx(3, !!(m & 0o2000), 's', 'S') + rwx(0, !!(m & 0o1000), 't', 'T');
}

/** ISO 8601 in UTC with the format's full precision (nanoseconds). */
export function isoTime(t: FsTime): string {
  const d = new Date(t.sec * 1000);
  if (Number.isNaN(d.getTime())) return `@${t.sec}.${String(t.nsec).padStart(9, '0')}`;
  return d.toISOString().replace(/\.\d{3}Z$/, `.${String(t.nsec).padStart(9, '0')}Z`);
}

function shortTime(t: FsTime | undefined): string {
  if (!t) return '-';
  const iso = isoTime(t);
  return iso.startsWith('@') ? iso : `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;
}

const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

export async function runLs(image: string, path: string | undefined, opts: LsOptions): Promise<number> {
  const kind = outputKind(opts.output);
  const start = path ?? '/';
  await withVolume(image, opts, async (fs) => {
    const json: unknown[] = [];
    const emit = async (dir: string, items: Listed[], header: boolean) => {
      items.sort(byName);
      if (kind === 'json') {
        for (const it of items) json.push(jsonOf(it));
        return;
      }
      if (header) process.stdout.write(`${dir}:\n`);
      if (opts.long) process.stdout.write(longRows(items));
      else for (const it of items) process.stdout.write(`${it.name}\n`);
    };
    const top = await fs.lstat(start);
    const followed = top.type === 'symlink' && !opts.long ? await fs.stat(start) : top;
    if (followed.type !== 'directory') {
      const it: Listed = { path: start, name: start.split('/').filter(Boolean).pop() ?? start, stats: top };
      if (top.type === 'symlink') it.target = await fs.readlink(start);
      await emit(start, [it], false);
    } else {
      // Depth first, each directory's subdirectories in name order, as ls -R prints them.
      const reader = fs.reader;
      const stack: { dir: string; node: unknown }[] = [{ dir: start, node: (await fs.resolve(start, true)).node }];
      // Each directory is listed once, however often a damaged volume links it.
      const seen = new Set<number>([(await fs.stat(start)).ino]);
      let first = true;
      while (stack.length > 0) {
        const { dir, node } = stack.pop() as { dir: string; node: unknown };
        const items: Listed[] = [];
        if (opts.all && kind === 'human') items.push({ path: dir, name: '.', stats: await reader.stat(node) });
        const subdirs: { dir: string; node: unknown }[] = [];
        for (const e of await reader.readdir(node)) {
          if (!opts.all && e.name.startsWith('.')) continue;
          const p = dir.endsWith('/') ? `${dir}${e.name}` : `${dir}/${e.name}`;
          const st = await reader.stat(e.node);
          const it: Listed = { path: p, name: e.name, stats: st };
          if (st.type === 'symlink') it.target = await reader.readlink(e.node);
          items.push(it);
          if (opts.recursive && st.type === 'directory') {
            if (seen.has(st.ino)) process.stderr.write(`vdisk: warning: ${fs.name}: ${p}: directory met twice; not listed again\n`);
            else subdirs.push({ dir: p, node: e.node });
            seen.add(st.ino);
          }
        }
        subdirs.sort((x, y) => (x.dir < y.dir ? 1 : x.dir > y.dir ? -1 : 0));
        stack.push(...subdirs);
        if (kind === 'human' && opts.recursive && !first) process.stdout.write('\n');
        await emit(dir, items, !!opts.recursive && kind === 'human');
        first = false;
      }
    }
    if (kind === 'json') printJson(json);
  });
  return 0;
}

function longRows(items: Listed[]): string {
  const rows = items.map((it) => [
    modeString(it.stats),
    String(it.stats.nlink),
    String(it.stats.uid),
    String(it.stats.gid),
    it.stats.rdev ? `${it.stats.rdev.major}, ${it.stats.rdev.minor}` : String(it.stats.size),
    shortTime(it.stats.mtime),
    it.name + (it.target !== undefined ? ` -> ${it.target}` : ''),
  ]);
  const widths = [1, 2, 3, 4].map((c) => Math.max(0, ...rows.map((r) => r[c].length)));
  return rows
    .map((r) => [r[0], r[1].padStart(widths[0]), r[2].padEnd(widths[1]), r[3].padEnd(widths[2]), r[4].padStart(widths[3]), r[5], r[6]].join(' ') + '\n')
    .join('');
}

function jsonOf(it: Listed): Record<string, unknown> {
  const s = it.stats;
  const out: Record<string, unknown> = {
    path: it.path,
    name: it.name,
    type: s.type,
    mode: `0${(s.mode & 0o7777).toString(8).padStart(3, '0')}`,
    'mode-string': modeString(s),
    uid: s.uid,
    gid: s.gid,
    nlink: s.nlink,
    ino: s.ino,
    size: s.size,
  };
  if (s.allocated !== undefined) out.allocated = s.allocated;
  for (const k of ['atime', 'mtime', 'ctime', 'birthtime'] as const) if (s[k]) out[k] = isoTime(s[k] as FsTime);
  if (it.target !== undefined) out.target = it.target;
  if (s.rdev) out.rdev = s.rdev;
  if (s.flags?.length) out.flags = s.flags;
  if (s.streams?.length) out.streams = s.streams.map((x) => ({ name: `${it.name}:${x.name}`, stream: x.name, size: x.size }));
  return out;
}
