import { write as fsWrite } from 'node:fs';
import { PositionalFile } from './io/file.js';
import { VdiskError, fromSystemError } from './errors.js';
import type { DiskImage } from './formats/image.js';
import { checkRange } from './formats/raw.js';

export type ExportTarget = { kind: 'file'; path: string } | { kind: 'fd'; fd: number; name?: string };

export interface ExportOptions {
  offset?: number;
  length?: number;
  /** Bytes per request; block-aligned requests keep every one inside one format block. */
  chunkSize?: number;
  /** Requests kept in flight while the previous one is written. */
  inFlight?: number;
  onProgress?: (done: number, total: number) => void;
}

const ZERO_RUN = 64 * 1024;
const ZEROS = Buffer.alloc(8 * 1024 * 1024);

interface Chunk {
  offset: number;
  length: number;
  /** null: the format says the whole chunk reads as zeros, so nothing was read. */
  data: Buffer | null;
}

/**
 * Copies a range of the virtual disk to a file (created sparse: unallocated, zero and all-zero ranges
 * become holes) or to a file descriptor (in order, zeros written out). Memory is bounded by
 * chunkSize x (inFlight + 1) whatever the disk size.
 */
export async function exportImage(image: DiskImage, target: ExportTarget, options: ExportOptions = {}): Promise<number> {
  const start = options.offset ?? 0;
  const length = options.length ?? image.virtualSize - start;
  checkRange(image, start, length);
  const end = start + length;
  const chunkSize = Math.max(4096, options.chunkSize ?? Math.min(image.preferredChunk, 8 * 1024 * 1024));
  const inFlight = Math.max(1, options.inFlight ?? 4);

  const free: Buffer[] = [];
  const take = (n: number) => {
    const b = free.pop() ?? Buffer.allocUnsafe(chunkSize);
    return b.subarray(0, n);
  };
  const give = (b: Buffer) => free.push(Buffer.from(b.buffer, b.byteOffset, chunkSize));

  const load = async (offset: number, len: number): Promise<Chunk> => {
    const extents = await image.blockStatus(offset, len);
    if (extents.every((e) => e.state !== 'data')) return { offset, length: len, data: null };
    const buf = take(len);
    await image.read(buf, offset);
    return { offset, length: len, data: buf };
  };

  let out: PositionalFile | null = null;
  if (target.kind === 'file') out = await PositionalFile.create(target.path);
  const sinkName = target.kind === 'file' ? target.path : (target.name ?? `fd ${target.fd}`);

  try {
    const queue: Promise<Chunk>[] = [];
    let next = start;
    const launch = () => {
      if (next >= end) return;
      const boundary = Math.min(end, (Math.floor(next / chunkSize) + 1) * chunkSize);
      const p = load(next, boundary - next);
      p.catch(() => undefined); // awaited in order below; avoid an unhandled rejection meanwhile
      queue.push(p);
      next = boundary;
    };
    for (let i = 0; i < inFlight; i++) launch();
    let written = 0;
    while (queue.length > 0) {
      const c = await (queue.shift() as Promise<Chunk>);
      launch();
      if (out) {
        if (c.data) await writeNonZeroRuns(out, c.data, c.offset - start);
      } else if (target.kind === 'fd') {
        await writeAllFd(target.fd, c.data ?? ZEROS.subarray(0, c.length), sinkName);
      }
      if (c.data) give(c.data);
      written += c.length;
      options.onProgress?.(written, length);
    }
    if (out) {
      // Holes at the end exist only once the file has its full length.
      await out.truncate(length);
    }
    return length;
  } finally {
    await out?.close();
  }
}

function isZero(buf: Buffer): boolean {
  for (let at = 0; at < buf.length; at += ZEROS.length) {
    const part = buf.subarray(at, Math.min(buf.length, at + ZEROS.length));
    if (!part.equals(ZEROS.subarray(0, part.length))) return false;
  }
  return true;
}

async function writeNonZeroRuns(out: PositionalFile, data: Buffer, base: number): Promise<void> {
  let runStart = -1;
  for (let at = 0; at < data.length; at += ZERO_RUN) {
    const zero = isZero(data.subarray(at, Math.min(data.length, at + ZERO_RUN)));
    if (!zero && runStart < 0) runStart = at;
    if (zero && runStart >= 0) {
      await out.writeAt(data.subarray(runStart, at), base + runStart);
      runStart = -1;
    }
  }
  if (runStart >= 0) await out.writeAt(data.subarray(runStart), base + runStart);
}

function writeAllFd(fd: number, buf: Buffer, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = 0;
    const step = () => {
      fsWrite(fd, buf, done, buf.length - done, null, (err, n) => {
        if (err) {
          const e = err as NodeJS.ErrnoException;
          if (e.code === 'EAGAIN') return void setTimeout(step, 1);
          if (e.code === 'EPIPE') return reject(new VdiskError('IO', `${name}: the reader closed the pipe`));
          return reject(fromSystemError(err, name, 'writing'));
        }
        done += n;
        if (done < buf.length) step();
        else resolve();
      });
    };
    step();
  });
}
