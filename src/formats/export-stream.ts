import { writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { PositionalFile, type FileOrFd } from '../io/file.js';
import { allocIoBuffer, isZero } from '../io/buffers.js';
import { VdiskError, fromSystemError } from '../errors.js';
import type { DiskImage } from './image.js';
import { checkRange } from './image.js';

/**
 * A file by path (created, or truncated, and written sparse), a descriptor (written in order), or a
 * file already open: `holes` true for a new file (sized, then only non-zero runs written), false for
 * a device written in place (every byte, zeros too, nothing truncated).
 */
export type ExportTarget = FileOrFd | { kind: 'open'; file: PositionalFile; holes: boolean };

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
const FD_SLICE = 64 * 1024; // the default pipe capacity: larger slices measured slower
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
  // Measured on a 4 GiB export: 2 MiB requests with 2 in flight beat 8 MiB x 4 by 10-20%, because the
  // buffers (6 MiB in all) stay in the CPU cache between the read that fills them and the write that
  // empties them. The kernel's readahead keeps the disk busy beyond that.
  const chunkSize = Math.max(4096, options.chunkSize ?? Math.min(image.preferredChunk, 2 * 1024 * 1024));
  const inFlight = Math.max(1, options.inFlight ?? 2);

  const free: Buffer[] = [];
  const pool = new Map<Buffer, Buffer>(); // a chunk's view -> the whole pooled buffer it came from
  const take = (n: number) => {
    const whole = free.pop() ?? allocIoBuffer(chunkSize);
    const view = whole.subarray(0, n);
    pool.set(view, whole);
    return view;
  };
  const give = (view: Buffer) => {
    free.push(pool.get(view) as Buffer);
    pool.delete(view);
  };

  const load = async (offset: number, len: number): Promise<Chunk> => {
    const extents = await image.blockStatus(offset, len);
    if (extents.every((e) => e.state !== 'data')) return { offset, length: len, data: null };
    const buf = take(len);
    await image.read(buf, offset);
    return { offset, length: len, data: buf };
  };

  let out: PositionalFile | null = null;
  let sink: FdSink | null = null;
  let holes = true;
  if (target.kind === 'file') out = await PositionalFile.create(target.path);
  else if (target.kind === 'open') {
    out = target.file;
    holes = target.holes;
  } else sink = new FdSink(target.fd, target.name ?? `fd ${target.fd}`);
  // Sized first, as qemu-img does: writes then never extend the file. A device keeps its size.
  if (out && holes) await out.truncate(length);

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
      if (out && holes) {
        if (c.data) await writeNonZeroRuns(out, c.data, c.offset - start);
      } else if (out) {
        await writeAll(out, c, c.offset - start);
      } else if (sink) {
        await sink.write(c.data ?? ZEROS.subarray(0, c.length));
      }
      if (c.data) give(c.data);
      written += c.length;
      options.onProgress?.(written, length);
    }
    return length;
  } finally {
    if (target.kind === 'file') await out?.close();
    await sink?.close();
  }
}

/** In place on a device: what was there before must not show through, so zeros are written too. */
async function writeAll(out: PositionalFile, c: Chunk, at: number): Promise<void> {
  if (c.data) return out.writeAt(c.data, at);
  for (let done = 0; done < c.length; done += ZEROS.length) {
    await out.writeAt(ZEROS.subarray(0, Math.min(ZEROS.length, c.length - done)), at + done);
  }
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

/**
 * Writes to a descriptor synchronously, in pipe-sized slices: measured against thread-pool writes of
 * whole chunks, this streamed twice as fast into a pipe (Node's own stdout is synchronous on pipes for
 * the same reason). Reads already in flight keep going on the thread pool meanwhile. A descriptor left
 * non-blocking by the parent answers EAGAIN when full; from then on a socket on it waits for drain.
 */
class FdSink {
  private socket: Socket | null = null;
  constructor(
    private readonly fd: number,
    private readonly name: string,
  ) {}

  async write(buf: Buffer): Promise<void> {
    let done = 0;
    while (done < buf.length && !this.socket) {
      try {
        done += writeSync(this.fd, buf, done, Math.min(FD_SLICE, buf.length - done));
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'EAGAIN') this.socket = new Socket({ fd: this.fd, readable: false, writable: true });
        else throw this.failure(err);
      }
    }
    if (done < buf.length && this.socket) await this.socketWrite(buf.subarray(done));
  }

  private socketWrite(buf: Buffer): Promise<void> {
    const s = this.socket as Socket;
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(this.failure(err));
      s.once('error', onError);
      const ok = s.write(Buffer.from(buf), (err) => {
        if (err) return;
        if (ok) {
          s.off('error', onError);
          resolve();
        }
      });
      if (!ok) {
        s.once('drain', () => {
          s.off('error', onError);
          resolve();
        });
      }
    });
  }

  private failure(err: unknown): VdiskError {
    const e = err as NodeJS.ErrnoException;
    if (e?.code === 'EPIPE') return new VdiskError('IO', `${this.name}: the reader closed the pipe`);
    return fromSystemError(err, this.name, 'writing');
  }

  async close(): Promise<void> {
    const s = this.socket;
    if (s) await new Promise<void>((resolve) => s.end(resolve));
  }
}

