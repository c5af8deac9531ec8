import * as nodeFs from 'node:fs';
import { Worker, type MessagePort } from 'node:worker_threads';
import { VdiskError, fromSystemError } from '../errors.js';
import { applyHostOps, queueFile, queueMkdir, queueSymlink, type FileOp, type HostBatch, type HostFs, type HostOpFailure } from './host-ops.js';

/**
 * The host side of an extraction, off the main thread. A tree of small files costs each file a few
 * system calls (open, write, futimes, close) that together took as long as reading the file from the
 * volume; done in order on the one JavaScript thread they left the second core idle. Here the main
 * thread reads each file's data straight into a shared buffer and queues what to do with it; batches of
 * operations go to a worker that carries them out in order, while the main thread reads the next files.
 *
 * Order is what keeps DEST safe: operations run in the order they were queued, a directory is made
 * before anything in it, and after the first failure nothing more runs (a name found taken stops the
 * extraction before anything is written beneath it). Small extractions never start the worker: the
 * first `workerAfter` operations run on the main thread, as the worker would run them.
 */
export interface HostWriterOptions {
  /**
   * Operations carried out on the main thread before a worker takes over (default 2048; 0: at once).
   * Starting the worker costs about 20 ms: measured on ext4 trees, it lost 10% on 1,000 files, broke
   * even at 5,000 and gained 10% at 20,000.
   */
  workerAfter?: number;
}

/** Room for one file's data in a batch: fill `buf` (laid out as the file), then `complete` it. */
export interface Reservation {
  buf: Buffer;
  readonly batch: Batch;
  readonly at: number;
}

interface Batch {
  id: number;
  /** Index of the shared buffer holding the batch's file data, -1 before the first reservation. */
  slab: number;
  used: number;
  q: HostBatch;
  /** Operations queued. */
  count: number;
  /** Reservations whose data is still being read: the batch waits for them before it goes. */
  pending: number;
  sealed: boolean;
}

/** The error for a name that exists where an extraction would create one: nothing is overwritten. */
export function alreadyExists(path: string): VdiskError {
  return new VdiskError('USAGE', `${path}: already exists; vdisk get writes only new files`);
}

/** The shared buffers, and their size: one holds a batch's file data; a file of up to SLAB_SIZE fits in one. */
export const SLAB_SIZE = 4 * 1024 * 1024;
const SLABS = 4;
/** Operations in one batch: small enough that the worker starts early, large enough that messages stay few. */
const BATCH_OPS = 128;
/** An idle worker is given a batch as soon as this many operations wait, rather than when it fills. */
const EAGER_OPS = 16;

export class HostWriter {
  private readonly slabs: SharedArrayBuffer[] = [];
  private readonly views: Buffer[] = [];
  private readonly freeSlabs: number[] = [];
  private readonly slabWaiters: (() => void)[] = [];
  private current: Batch | null = null;
  /** Sealed batches not yet given to the executor, in order. */
  private readonly sealed: Batch[] = [];
  /** Batches given to the worker and not yet acknowledged, by id. */
  private outstanding = 0;
  private readonly inWorker = new Map<number, Batch>();
  private readonly idleWaiters: (() => void)[] = [];
  private ids = 0;
  private done = 0;
  private worker: Worker | null = null;
  private workerFailed = false;
  private failure: Error | null = null;
  private readonly workerAfter: number;

  constructor(options: HostWriterOptions = {}) {
    this.workerAfter = options.workerAfter ?? 2048;
    for (let i = 0; i < SLABS; i++) this.freeSlabs.push(i);
  }

  /** The failure that stopped the host side, thrown: called between entries so the walk stops early. */
  check(): void {
    if (this.failure) throw this.failure;
  }

  /** Queues a new directory (mode 0700 until the end). */
  mkdir(path: string): void {
    this.check();
    const b = this.batch();
    queueMkdir(b.q, path);
    b.count++;
    this.afterChange(b);
  }

  /** Queues a symbolic link, with its owner (uid -1: left) and times (NaN: left). */
  symlink(path: string, target: string, uid: number, gid: number, atime: number, mtime: number): void {
    this.check();
    // The names travel NUL-separated; a NUL in a target is refused as symlink(2) would refuse it.
    if (target.includes('\0')) throw new VdiskError('IO', `${path}: creating a symbolic link failed: its target holds a NUL byte`);
    const b = this.batch();
    queueSymlink(b.q, path, target, uid, gid, atime, mtime);
    b.count++;
    this.afterChange(b);
  }

  /** Room for `size` bytes (at most SLAB_SIZE) of one file's data; waits while every buffer is in use. */
  async reserve(size: number): Promise<Reservation> {
    for (;;) {
      const room = this.tryReserve(size);
      if (room) return room;
      // Several reservations may wait here at once: each looks again once a buffer is free.
      await this.bufferFreed();
    }
  }

  /** Settles when a shared buffer is handed back (or the host side fails): then tryReserve may succeed. */
  bufferFreed(): Promise<void> {
    return new Promise<void>((r) => this.slabWaiters.push(r));
  }

  /** Whether tryReserve(size) would find room now. */
  hasRoom(size: number): boolean {
    const b = this.current;
    if (b && b.slab >= 0 && b.used + size <= SLAB_SIZE && b.count + b.pending < BATCH_OPS) return true;
    return this.freeSlabs.length > 0;
  }

  /** reserve without waiting: null while every buffer is in use. */
  tryReserve(size: number): Reservation | null {
    this.check();
    let b = this.batch();
    if (b.slab >= 0 && (b.used + size > SLAB_SIZE || b.count + b.pending >= BATCH_OPS)) {
      this.seal(b);
      b = this.batch();
    }
    if (b.slab < 0) {
      if (this.freeSlabs.length === 0) return null;
      b.slab = this.freeSlabs.pop() as number;
    }
    const at = b.used;
    b.used += size;
    b.pending++;
    return { buf: this.view(b.slab).subarray(at, at + size), batch: b, at };
  }

  /** Gives a reservation its file (whose `at` must be the reservation's), or drops it (null). */
  complete(r: Reservation, op: FileOp | null): void {
    const b = r.batch;
    b.pending--;
    if (op && !this.failure) {
      queueFile(b.q, op);
      b.count++;
    }
    this.afterChange(b);
  }

  /** Waits until every operation queued so far has been carried out; throws the first failure. */
  async drain(): Promise<void> {
    if (this.current && (this.current.count > 0 || this.current.pending > 0)) this.seal(this.current);
    while (!this.failure && (this.sealed.length > 0 || this.outstanding > 0)) await new Promise<void>((r) => this.idleWaiters.push(r));
    this.check();
  }

  /** Stops the worker; what was not carried out is dropped. */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }

  private view(slab: number): Buffer {
    if (!this.views[slab]) {
      this.slabs[slab] = new SharedArrayBuffer(SLAB_SIZE);
      this.views[slab] = Buffer.from(this.slabs[slab]);
    }
    return this.views[slab];
  }

  private batch(): Batch {
    if (!this.current) this.current = { id: this.ids++, slab: -1, used: 0, q: { nums: [], names: [] }, count: 0, pending: 0, sealed: false };
    return this.current;
  }

  private seal(b: Batch): void {
    if (b.sealed) return;
    b.sealed = true;
    this.sealed.push(b);
    if (this.current === b) this.current = null;
    this.pump();
  }

  private afterChange(b: Batch): void {
    if (b.sealed) this.pump();
    else if (b.count >= BATCH_OPS || (this.worker && this.outstanding === 0 && this.sealed.length === 0 && b.pending === 0 && b.count >= EAGER_OPS)) this.seal(b);
  }

  /** Hands sealed batches whose data is all in, in order, to the worker or runs them here. */
  private pump(): void {
    while (this.sealed.length > 0 && this.sealed[0].pending === 0) {
      const b = this.sealed.shift() as Batch;
      if (this.failure) {
        this.release(b);
        continue;
      }
      if (!this.worker && !this.workerFailed && this.done >= this.workerAfter) this.startWorker();
      this.done += b.count;
      if (this.worker) {
        this.outstanding++;
        this.worker.postMessage({ id: b.id, slab: b.slab, nums: Float64Array.from(b.q.nums), names: b.q.names.join('\0') });
        this.inWorker.set(b.id, b);
      } else {
        const failed = applyHostOps(nodeFs, b.q.nums, b.q.names, b.slab >= 0 ? this.view(b.slab) : null);
        if (failed) this.fail(failed);
        this.release(b);
      }
    }
    this.wakeIdle();
  }

  private release(b: Batch): void {
    if (b.slab >= 0) {
      this.freeSlabs.push(b.slab);
      b.slab = -1;
      // Every waiter looks again: the first may find its batch already has a buffer and leave this one.
      for (const w of this.slabWaiters.splice(0)) w();
    }
  }

  private wakeIdle(): void {
    if (this.failure || (this.sealed.length === 0 && this.outstanding === 0)) {
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private fail(f: HostOpFailure): void {
    if (this.failure) return;
    this.failure = f.doing === 'exists'
      ? alreadyExists(f.path)
      : fromSystemError({ code: f.code, message: f.message }, f.path, f.doing);
    // Whoever waits for a buffer or for the queue to empty learns of it now.
    for (const w of this.slabWaiters.splice(0)) w();
    this.wakeIdle();
  }

  private startWorker(): void {
    // The worker runs applyHostOps's own source: nothing to resolve or bundle, and it works the same
    // from the compiled modules, the bundle and a single-file executable.
    // Its modules are required by the source text itself, where no bundler rewrites the calls. A
    // transpiler that keeps function names (tsx, esbuild's keepNames) wraps inner functions in
    // __name(fn, name) calls: in the worker that helper need only hand the function back.
    const source = `var __name = (fn) => fn;\n(${workerMain.toString()})(${applyHostOps.toString()}, require('node:worker_threads'), require('node:fs'));`;
    for (let i = 0; i < SLABS; i++) this.view(i);
    try {
      this.worker = new Worker(source, { eval: true, workerData: { slabs: this.slabs } });
    } catch {
      // No worker threads here: everything stays on the main thread, as for small extractions.
      this.workerFailed = true;
      return;
    }
    this.worker.unref();
    this.worker.on('message', (m: { id: number; failure: HostOpFailure | null }) => {
      const b = this.inWorker.get(m.id);
      this.inWorker.delete(m.id);
      this.outstanding--;
      if (m.failure) this.fail(m.failure);
      if (b) this.release(b);
      this.pump();
    });
    this.worker.on('error', (err) => this.fail({ path: 'the destination', doing: 'writing', message: `host writer thread failed: ${err.message}` }));
    this.worker.on('exit', (code) => {
      if (this.worker && (this.outstanding > 0 || code !== 0)) this.fail({ path: 'the destination', doing: 'writing', message: `host writer thread stopped (exit ${code})` });
    });
  }
}

/**
 * The worker's side: each batch is carried out in order; after a failure nothing more is done (a later
 * batch may write beneath a directory that was found taken). Self-contained: it runs as source text.
 */
function workerMain(apply: typeof applyHostOps, threads: { parentPort: MessagePort; workerData: { slabs: SharedArrayBuffer[] } }, fs: HostFs): void {
  const { parentPort, workerData } = threads;
  const views = workerData.slabs.map((s) => Buffer.from(s));
  let failed: unknown = null;
  parentPort.on('message', (m: { id: number; slab: number; nums: Float64Array; names: string }) => {
    if (failed) {
      parentPort.postMessage({ id: m.id, failure: failed });
      return;
    }
    failed = apply(fs, m.nums, m.names.split('\0'), m.slab >= 0 ? views[m.slab] : null);
    parentPort.postMessage({ id: m.id, failure: failed });
  });
}
