#!/usr/bin/env node
// The host side of a tree extraction alone: loads the tree SRC (a copy already on the host) into
// memory, then makes it again under DEST with the system calls vdisk get's host writer makes for each
// file (open with O_EXCL, write, futimes, close; mkdir for each directory), one thread, nothing read
// from any volume. Prints the seconds the making took. With Node's bare start added, that is the least
// any Node program could take to extract the tree here: see reportTreeFloor in bench-lib.mjs.
import { closeSync, constants, futimesSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, writeSync } from 'node:fs';
import { join } from 'node:path';

const [src, dest] = process.argv.slice(2);
if (!src || !dest) {
  console.error('usage: tree-floor.mjs SRC DEST');
  process.exit(2);
}

// Pre-order, as an extraction meets the tree: a directory, then what is in it.
const items = [];
const load = (dir, rel) => {
  items.push({ rel, dir: true });
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    const st = lstatSync(path);
    if (st.isDirectory()) load(path, join(rel, name));
    else if (st.isFile()) items.push({ rel: join(rel, name), dir: false, data: readFileSync(path), mode: st.mode & 0o7777, mtime: st.mtimeMs / 1000 });
  }
};
load(src, '');

const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const t0 = process.hrtime.bigint();
for (const it of items) {
  const path = join(dest, it.rel);
  if (it.dir) {
    mkdirSync(path, { mode: 0o700 });
    continue;
  }
  const fd = openSync(path, flags, it.mode);
  let done = 0;
  while (done < it.data.length) done += writeSync(fd, it.data, done, it.data.length - done, done);
  futimesSync(fd, it.mtime, it.mtime);
  closeSync(fd);
}
console.log((Number(process.hrtime.bigint() - t0) / 1e9).toFixed(4));
