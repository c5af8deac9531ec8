#!/usr/bin/env node
// Copies a file or a tree out of a FAT volume through the library (dist/), as `vdisk get` does:
// contents and mtimes, with several files in flight. bench-fat.mjs times it beside `vdisk get` to
// show what the reader itself costs.
// Usage: node scripts/fat-extract.mjs IMAGE PATH DEST
import { mkdir, open, utimes } from 'node:fs/promises';
import { closeSync, openSync, utimesSync, writeSync } from 'node:fs';
import { join } from 'node:path';
// The two modules it needs, not the whole library: less to load at start-up.
import { openImage } from '../dist/src/formats/open.js';
import { openFilesystem } from '../dist/src/filesystems/open.js';

const [img, path, dest] = process.argv.slice(2);
const CHUNK = 8 * 1024 * 1024;
/** Files copied at once: small files are latency-bound, so several go in flight. */
const FILES_IN_FLIGHT = 16;
/**
 * Files up to this size are written with synchronous calls: four thread-pool round trips (open,
 * write, close, utimes) cost more than the writes themselves.
 */
const SMALL = 1024 * 1024;

const image = await openImage(img);
const fs = await openFilesystem(image);
const reader = fs.reader;

async function copyFile(node, to, st, scratch) {
  const file = await reader.open(node);
  if (file.size <= SMALL) {
    const buf = scratch.subarray(0, file.size);
    const n = file.size > 0 ? await file.read(buf, 0) : 0;
    const fd = openSync(to, 'w');
    try {
      writeSync(fd, buf, 0, n, 0);
    } finally {
      closeSync(fd);
    }
    utimesSync(to, st.atime?.sec ?? st.mtime.sec, st.mtime.sec);
    return;
  }
  const out = await open(to, 'w');
  try {
    // Read the next chunk while the last one is written.
    let buf = Buffer.allocUnsafe(Math.min(CHUNK, file.size));
    let spare = Buffer.allocUnsafe(buf.length);
    let pending = file.size > 0 ? file.read(buf, 0) : null;
    for (let at = 0; pending; ) {
      const n = await pending;
      const next = at + n;
      pending = next < file.size ? file.read(spare, next) : null;
      await out.write(buf, 0, n, at);
      [buf, spare] = [spare, buf];
      at = next;
    }
  } finally {
    await out.close();
  }
  await utimes(to, st.atime?.sec ?? st.mtime.sec, st.mtime.sec);
}

async function copyTree(node, to) {
  await mkdir(to, { recursive: true });
  const entries = await reader.readdir(node);
  const dirs = [];
  let next = 0;
  async function worker(scratch) {
    while (next < entries.length) {
      const e = entries[next++];
      if (e.type === 'directory') dirs.push(e);
      else await copyFile(e.node, join(to, e.name), await reader.stat(e.node), scratch);
    }
  }
  await Promise.all(scratches.map(worker));
  for (const d of dirs) await copyTree(d.node, join(to, d.name));
}

/** One buffer per file in flight, reused: a fresh one per small file only feeds the garbage collector. */
const scratches = Array.from({ length: FILES_IN_FLIGHT }, () => Buffer.allocUnsafe(SMALL));
const { node } = await fs.resolve(path);
const st = await reader.stat(node);
if (st.type === 'directory') await copyTree(node, dest);
else await copyFile(node, dest, st, scratches[0]);
await image.close();
