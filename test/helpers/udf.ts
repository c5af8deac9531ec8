import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { sh } from './peers.js';
import type { TestContext } from 'node:test';
import type { Filesystem, FileType } from '../../src/filesystems/filesystem.js';

/**
 * UDF fixtures made by the real tools: mkudffs (udftools) makes the volume, udfclient (NetBSD's
 * userland UDF, package udfclient) fills it, since the kernel here cannot mount UDF; udfinfo and
 * udfclient's own listing are the peers' answers.
 */

const ENV = { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` };

/** `udfinfo` as key=value pairs. */
export function udfinfo(img: string, extra: string[] = []): Record<string, string> {
  const r = spawnSync('udfinfo', [...extra, img], { encoding: 'utf8', env: ENV });
  const out: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^([a-z]+)=(.*)$/.exec(line);
    if (m && !(m[1] in out)) out[m[1]] = m[2];
  }
  return out;
}

/** udfclient's name for the logical volume it mounts: volume set, primary volume, logical volume, file set. */
function udfclientVolume(img: string): string {
  const i = udfinfo(img);
  return `${i.fullvsid}:${i.vid}:${i.lvid}:${i.fsid}`;
}

/** Runs udfclient commands against the image's logical volume (several images at once: it mostly sleeps); returns its output. */
export function udfclient(img: string, blockSize: number, commands: string[], write = false): Promise<string> {
  const script = [`cd "${udfclientVolume(img)}"`, ...commands, 'quit', ''].join('\n');
  return new Promise((resolve, reject) => {
    const p = spawn('udfclient', [...(write ? ['-W'] : []), '-b', String(blockSize), img], { env: ENV, stdio: ['pipe', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    p.stdout.on('data', (d) => chunks.push(d));
    p.stderr.on('data', (d) => chunks.push(d));
    const timer = setTimeout(() => p.kill(), 60_000);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      const out = Buffer.concat(chunks).toString('utf8');
      if (code !== 0) reject(new Error(`udfclient failed (${code}): ${out.slice(-500)}`));
      else resolve(out);
    });
    p.stdin.end(script);
  });
}

export interface PeerListing {
  mode: string;
  uid: number;
  gid: number;
  size: number;
}

/**
 * mkudffs on a sparse file of `size` bytes, every top-level entry of `src` copied in by udfclient, and
 * in the same session its `ls` of each directory in `dirs`: path -> mode string, owner, size.
 * udfclient's free-space search fails early on large blocks unless the volume is large (it is sparse).
 */
export async function makeFilledUdf(img: string, opts: { rev: string; blockSize: number; size: number; src: string; label: string; dirs?: string[]; mkudffs?: string[] }): Promise<Map<string, PeerListing>> {
  sh('truncate', ['-s', String(opts.size), img]);
  sh('mkudffs', [...(opts.mkudffs ?? ['--media-type=hd']), `--udfrev=${opts.rev}`, `--blocksize=${opts.blockSize}`, `--label=${opts.label}`, img]);
  const top = readdirSync(opts.src).map((n) => `"${n}"`);
  const vol = udfclientVolume(img);
  const listing = (opts.dirs ?? []).flatMap((d) => [`cd "/${vol}${d === '/' ? '' : d}"`, 'ls']);
  const out = await udfclient(img, opts.blockSize, [`lcd "${opts.src}"`, `mput ${top.join(' ')}`, ...listing], true);
  if (/No space left|couldn't|While writing/iu.test(out)) throw new Error(`udfclient could not fill ${img}: ${out.split('\n').filter((l) => /space|couldn't|While/u.test(l)).join(' / ')}`);
  const peer = new Map<string, PeerListing>();
  let dir: string | null = null;
  for (const line of out.split('\n')) {
    const cd = /UDF working directory is\s+\/[^/]+(\/.*)?$/u.exec(line);
    if (cd) dir = (cd[1] ?? '').replace(/\/$/u, '');
    const m = /^(?:UDF> )*([-dl][-rwxsStT]{9})\s+(-?\d+)\s+(-?\d+)\s+(\d+)\s+(.+)$/u.exec(line);
    if (!m || dir === null || m[5] === '.' || m[5] === '..') continue;
    peer.set(`${dir}/${m[5]}`, { mode: m[1], uid: Number(m[2]), gid: Number(m[3]), size: Number(m[4]) });
  }
  return peer;
}

/**
 * A UDF 2.60 image of a host tree made by pycdlib (python3-pycdlib): files, directories, symlinks and hard links,
 * every ISO-9660 name a short one in the root (only the UDF tree matters here).
 */
export function makePycdlibUdf(src: string, iso: string): void {
  const script = `
import pycdlib, os, sys
src, out = sys.argv[1], sys.argv[2]
iso = pycdlib.PyCdlib()
iso.new(udf='2.60', interchange_level=4)
n = 0
seen = {}
for root, dirs, files in os.walk(src):
    rel = os.path.relpath(root, src)
    for d in sorted(dirs):
        if os.path.islink(os.path.join(root, d)):
            files.append(d)
            continue
        n += 1
        iso.add_directory('/D%d' % n, udf_path='/' + os.path.normpath(os.path.join(rel, d)))
    for f in sorted(files):
        full = os.path.join(root, f)
        p = '/' + os.path.normpath(os.path.join(rel, f))
        st = os.lstat(full)
        if os.path.islink(full):
            iso.add_symlink(udf_symlink_path=p, udf_target=os.readlink(full))
        elif st.st_nlink > 1 and (st.st_dev, st.st_ino) in seen:
            iso.add_hard_link(udf_old_path=seen[(st.st_dev, st.st_ino)], udf_new_path=p)
        else:
            seen[(st.st_dev, st.st_ino)] = p
            n += 1
            iso.add_file(full, '/F%d.;1' % n, udf_path=p)
iso.write(out)
`;
  sh('/usr/bin/python3', ['-c', script, src, iso]);
}

/** Whether python3-pycdlib is there (in the system Python: a pyenv shim may shadow it); in CI it must be. */
export function havePycdlib(): boolean {
  const ok = spawnSync('/usr/bin/python3', ['-c', 'import pycdlib'], { encoding: 'utf8' }).status === 0;
  if (!ok && process.env.CI === 'true') throw new Error('peer missing in CI: python3-pycdlib');
  return ok;
}

/** needPeers for python3-pycdlib. */
export function needPycdlib(t: TestContext): boolean {
  if (havePycdlib()) return true;
  t.skip('peer missing: python3-pycdlib');
  return false;
}

export interface Node {
  type: FileType;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtime?: number;
  sha?: string;
  target?: string;
}

/** Every path under the root with its type, size, mode, owner, content hash or link target. */
export async function walkFs(fs: Filesystem): Promise<Map<string, Node>> {
  const out = new Map<string, Node>();
  const visit = async (dir: string): Promise<void> => {
    for (const e of await fs.readdir(dir)) {
      const p = dir === '/' ? `/${e.name}` : `${dir}/${e.name}`;
      const st = await fs.lstat(p);
      const n: Node = { type: st.type, size: st.size, mode: st.mode, uid: st.uid, gid: st.gid, mtime: st.mtime?.sec };
      if (st.type === 'file') {
        const f = await fs.open(p);
        const h = createHash('sha256');
        const buf = Buffer.alloc(1 << 20);
        for (let pos = 0; pos < f.size;) {
          const got = await f.read(buf, pos);
          if (got <= 0) throw new Error(`short read of ${p} at ${pos}`);
          h.update(buf.subarray(0, got));
          pos += got;
        }
        n.sha = h.digest('hex');
      } else if (st.type === 'symlink') {
        n.target = await fs.readlink(p);
      }
      out.set(p, n);
      if (st.type === 'directory') await visit(p);
    }
  };
  await visit('/');
  return out;
}

/** The same for a directory on the host. */
export function walkHost(root: string): Map<string, Node> {
  const out = new Map<string, Node>();
  const visit = (dir: string, rel: string): void => {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      const p = `${rel}/${name}`;
      const st = lstatSync(full);
      const type: FileType = st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : 'file';
      const n: Node = { type, size: st.size, mode: st.mode, uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000) };
      if (type === 'file') n.sha = createHash('sha256').update(readFileSync(full)).digest('hex');
      if (type === 'symlink') n.target = readlinkSync(full);
      out.set(p, n);
      if (type === 'directory') visit(full, p);
    }
  };
  visit(root, '');
  return out;
}

/** `drwxr-xr-x` for a st_mode. */
export function modeString(mode: number): string {
  const t = (mode & 0o170000) === 0o040000 ? 'd' : (mode & 0o170000) === 0o120000 ? 'l' : '-';
  const rwx = (bits: number, special: number, ch: string) =>
    `${bits & 4 ? 'r' : '-'}${bits & 2 ? 'w' : '-'}${special ? (bits & 1 ? ch : ch.toUpperCase()) : bits & 1 ? 'x' : '-'}`;
  return t + rwx((mode >> 6) & 7, mode & 0o4000, 's') + rwx((mode >> 3) & 7, mode & 0o2000, 's') + rwx(mode & 7, mode & 0o1000, 't');
}
