import * as nodeFs from 'node:fs';
import { Worker, type MessagePort } from 'node:worker_threads';
import { VdiskError, fromSystemError } from '../errors.js';
import { applyHostOps, queueFile, queueHostFile, queueSymlink, type FileOp, type HostBatch, type HostFileOp, type HostFs, type HostOpFailure, type HostScratch, newHostScratch } from './host-ops.js';

/**
 * The host side of an extraction, off the main thread. A tree of small files costs each file a few
 * system calls (open, write, futimes, close) that together took as long as reading the file from the
 * volume; done in order on the one JavaScript thread they left the second core idle. Here the main
 * thread queues what to do with each file (its data read into a shared buffer, or where it lies in the
 * image file); batches of operations go to a worker, while the main thread reads the next files.
 *
 * Directories are made at once, on the main thread, when queued: every queued operation then finds its
 * directory made, so batches depend on nothing before them and any thread may carry one out. The main
 * thread takes batches itself until the worker is ready, when the worker falls behind, and while it
 * waits at the end; so neither thread idles while the other has work. A name found already taken stops
 * the extraction before anything is queued beneath it; after a failure no batch is started.
 */
export interface HostWriterOptions {
  /**
   * Operations queued before a worker is started (default 256; 0: at once). Its start takes the other
   * core about 40 ms, during which the main thread carries out the batches itself.
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
  /** It failed, and the main thread knows how: until then it is not dropped (drain would end too soon). */
  failureIn: boolean;
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
/** Batches handed to the worker and not yet found done span fewer ids than this: the ring of their states. */
const RING = 64;
/** Batches handed to the worker that it has not taken yet: with more, the main thread takes the oldest itself. */
const BACKLOG = 8;

/**
 * A handed batch's state, in the ring shared with the worker: whichever thread turns WAITING into TAKEN
 * carries it out. The worker takes batches as its messages arrive, without waiting for the main thread's
 * event loop, which a walk of files at hand may not give way to for long (acknowledgements through it
 * left the worker idle, and the main thread then did most of the writing).
 */
const WAITING = 0;
const TAKEN = 1;
const DONE = 2;
/** Done, and failed: the failure comes by message. */
const FAILED = 3;
/**
 * After the ring, a flag the main thread raises while it waits for the worker (drain): only then, or
 * for a batch holding a shared buffer or a failure, does the worker say it is done. Every other batch
 * is found done by its state; a message for each woke the main thread for nothing, at a cost.
 */
const LISTENING = RING;

export class HostWriter {
  private slabs: SharedArrayBuffer[] = [];
  private readonly views: Buffer[] = [];
  private readonly freeSlabs: number[] = [];
  private readonly slabWaiters: (() => void)[] = [];
  private current: Batch | null = null;
  /** Sealed batches not yet handed over or carried out (some data may still be being read), in order. */
  private readonly sealed: Batch[] = [];
  /** Batches handed to the worker and not yet found done, in order. */
  private readonly handed: Batch[] = [];
  private states: Int32Array = new Int32Array(new SharedArrayBuffer((RING + 1) * 4));
  private readonly idleWaiters: (() => void)[] = [];
  private ids = 0;
  /** Operations queued so far: the worker starts once there are workerAfter. */
  private queued = 0;
  private worker: Worker | null = null;
  private workerFailed = false;
  private failure: Error | null = null;
  private readonly workerAfter: number;
  private readonly scratch: HostScratch = newHostScratch();

  constructor(options: HostWriterOptions = {}) {
    this.workerAfter = options.workerAfter ?? 256;
    for (let i = 0; i < SLABS; i++) this.freeSlabs.push(i);
    // A worker started ahead (prestartHostWriter) is taken at once, before any buffer is used.
    const kit = takePrestarted();
    if (kit) this.adopt(kit);
  }

  /** The failure that stopped the host side, thrown: called between entries so the walk stops early. */
  check(): void {
    if (this.failure) throw this.failure;
  }

  /** Makes a new directory now (mode 0700 until the end): what is queued in it later finds it made. */
  mkdir(path: string): void {
    this.check();
    try {
      nodeFs.mkdirSync(path, 0o700);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw alreadyExists(path);
      throw fromSystemError(err, path, 'creating a directory');
    }
  }

  /** Queues a symbolic link, with its owner (uid -1: left) and times (NaN: left). */
  symlink(path: string, target: string, uid: number, gid: number, atime: number, mtime: number): void {
    this.check();
    // The names travel NUL-separated; a NUL in a target is refused as symlink(2) would refuse it.
    if (target.includes('\0')) throw new VdiskError('IO', `${path}: creating a symbolic link failed: its target holds a NUL byte`);
    const b = this.batch();
    queueSymlink(b.q, path, target, uid, gid, atime, mtime);
    this.added(b);
  }

  /**
   * Queues a file whose bytes the executor reads itself from a host file (the image), which must stay
   * open until drain: no shared buffer is taken, and the main thread never touches the data.
   */
  hostFile(op: HostFileOp): void {
    this.check();
    const b = this.batch();
    queueHostFile(b.q, op);
    this.added(b);
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

  /**
   * Whether tryReserve(size) would find room now. With every buffer taken, a batch holding one that the
   * worker has not taken yet is first carried out here, which hands its buffer back.
   */
  hasRoom(size: number): boolean {
    const b = this.current;
    if (b && b.slab >= 0 && b.used + size <= SLAB_SIZE && b.count + b.pending < BATCH_OPS) return true;
    if (this.freeSlabs.length === 0) this.freeASlab();
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
      if (this.freeSlabs.length === 0) this.freeASlab();
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
      this.queued++;
    }
    this.afterChange(b);
  }

  /**
   * Waits until every operation queued so far has been carried out, taking the batches the worker has
   * not taken yet itself; throws the first failure.
   */
  async drain(): Promise<void> {
    if (this.current && (this.current.count > 0 || this.current.pending > 0)) this.seal(this.current);
    while (!this.failure) {
      this.pump();
      let took = false;
      for (const b of this.handed) if (this.take(b)) took = true;
      this.reap();
      if (this.sealed.length === 0 && this.handed.length === 0) break;
      if (took) continue;
      // Woken by the worker finishing a batch, or a reservation's data coming in. The flag is raised
      // before looking once more, so that a batch finished meanwhile is either seen here or announced.
      Atomics.store(this.states, LISTENING, 1);
      this.reap();
      if (this.sealed.length === 0 && this.handed.length === 0) break;
      await new Promise<void>((r) => this.idleWaiters.push(r));
    }
    Atomics.store(this.states, LISTENING, 0);
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
      this.slabs[slab] ??= new SharedArrayBuffer(SLAB_SIZE);
      this.views[slab] = Buffer.from(this.slabs[slab]);
    }
    return this.views[slab];
  }

  private batch(): Batch {
    if (!this.current) this.current = { id: this.ids++, slab: -1, used: 0, q: { nums: [], names: [] }, count: 0, pending: 0, sealed: false, failureIn: false };
    return this.current;
  }

  private added(b: Batch): void {
    b.count++;
    this.queued++;
    this.afterChange(b);
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
    else if (b.count >= BATCH_OPS || (this.worker && this.handed.length === 0 && this.sealed.length === 0 && b.pending === 0 && b.count >= EAGER_OPS)) this.seal(b);
  }

  /**
   * Hands sealed batches whose data is all in to the worker, or carries them out here while there is
   * no worker; then takes the oldest the worker has not taken while more than BACKLOG wait.
   */
  private pump(): void {
    this.reap();
    while (this.sealed.length > 0 && this.sealed[0].pending === 0) {
      const b = this.sealed.shift() as Batch;
      if (this.failure) {
        this.release(b);
        continue;
      }
      if (!this.worker && !this.workerFailed && this.queued >= this.workerAfter) this.startWorker();
      const w = this.worker;
      if (w && (this.handed.length === 0 || b.id - this.handed[0].id < RING)) {
        Atomics.store(this.states, b.id % RING, WAITING);
        // While the worker has batches, it keeps the process alive: the main thread may be waiting for it.
        if (this.handed.length === 0) w.ref();
        this.handed.push(b);
        w.postMessage({ id: b.id, slab: b.slab, nums: Float64Array.from(b.q.nums), names: b.q.names.join('\0') });
      } else this.runHere(b);
    }
    this.reap();
    let waiting = 0;
    for (const b of this.handed) if (Atomics.load(this.states, b.id % RING) === WAITING) waiting++;
    for (let i = 0; i < this.handed.length && waiting > BACKLOG; i++) {
      if (this.take(this.handed[i])) waiting--;
    }
    this.reap();
    for (const w of this.idleWaiters.splice(0)) w();
  }

  /** A handed batch the worker has not taken, carried out here; false when the worker took it. */
  private take(b: Batch): boolean {
    const slot = b.id % RING;
    if (Atomics.compareExchange(this.states, slot, WAITING, TAKEN) !== WAITING) return false;
    const failed = this.failure ? null : this.apply(b);
    if (failed) b.failureIn = true;
    Atomics.store(this.states, slot, failed ? FAILED : DONE);
    return true;
  }

  /** With every shared buffer taken: the oldest handed batch holding one that the worker has not taken, carried out here. */
  private freeASlab(): void {
    this.reap();
    for (const b of this.handed) {
      if (b.slab >= 0 && this.take(b)) break;
    }
    this.reap();
  }

  /** Batches found done, oldest first, dropped from the handed ones, their buffers handed back (a failed one's once its failure came). */
  private reap(): void {
    while (this.handed.length > 0) {
      const b = this.handed[0];
      const state = Atomics.load(this.states, b.id % RING);
      if (!(state === DONE || (state === FAILED && b.failureIn))) break;
      this.handed.shift();
      this.release(b);
      if (this.handed.length === 0) this.worker?.unref();
    }
  }

  /** A batch never handed over, carried out on the main thread. */
  private runHere(b: Batch): void {
    this.apply(b);
    this.release(b);
  }

  private apply(b: Batch): HostOpFailure | null {
    const failed = applyHostOps(nodeFs, b.q.nums, b.q.names, b.slab >= 0 ? this.view(b.slab) : null, this.scratch);
    if (failed) this.fail(failed);
    return failed;
  }

  private release(b: Batch): void {
    if (b.slab >= 0) {
      this.freeSlabs.push(b.slab);
      b.slab = -1;
      // Every waiter looks again: the first may find its batch already has a buffer and leave this one.
      for (const w of this.slabWaiters.splice(0)) w();
    }
  }

  private fail(f: HostOpFailure): void {
    if (this.failure) return;
    this.failure = f.doing === 'exists'
      ? alreadyExists(f.path)
      : fromSystemError({ code: f.code, message: f.message }, f.path, f.doing);
    // Whoever waits for a buffer or for the queue to empty learns of it now.
    for (const w of this.slabWaiters.splice(0)) w();
    for (const w of this.idleWaiters.splice(0)) w();
  }

  private startWorker(): void {
    // Started now, the worker shares the buffers this writer already uses.
    for (let i = 0; i < SLABS; i++) this.view(i);
    const kit = spawnKit(this.slabs, this.states);
    if (!kit) {
      // No worker threads here: everything stays on the main thread, as for small extractions.
      this.workerFailed = true;
      return;
    }
    this.adopt(kit);
  }

  /** Takes a started worker with its shared memory (before any buffer of this writer is used). */
  private adopt(kit: WorkerKit): void {
    this.slabs = kit.slabs;
    this.states = kit.states;
    const worker = kit.worker;
    this.worker = worker;
    worker.removeAllListeners('error');
    worker.on('message', (m: { id: number; failure: HostOpFailure | null }) => {
      if (m.failure) {
        this.fail(m.failure);
        const b = this.handed.find((x) => x.id === m.id);
        if (b) b.failureIn = true;
      }
      this.pump();
    });
    worker.on('error', (err) => this.fail({ path: 'the destination', doing: 'writing', message: `host writer thread failed: ${err.message}` }));
    worker.on('exit', (code) => {
      if (this.worker && (this.handed.length > 0 || code !== 0)) this.fail({ path: 'the destination', doing: 'writing', message: `host writer thread stopped (exit ${code})` });
    });
  }
}

/** A worker with the shared buffers and batch states it was started with. */
interface WorkerKit {
  worker: Worker;
  slabs: SharedArrayBuffer[];
  states: Int32Array;
}

/** A worker started ahead of need, for the next host writer to take. */
let prestarted: WorkerKit | null = null;

/**
 * Starts a host writer's worker now, for the next extraction to take: its start (20 ms or more of the
 * other core) then overlaps opening the image and the volume, while that core has nothing to do, and
 * the worker is ready when the first files are queued. Unused, it does not keep the process alive.
 */
export function prestartHostWriter(): void {
  if (prestarted) return;
  const slabs: SharedArrayBuffer[] = [];
  for (let i = 0; i < SLABS; i++) slabs.push(new SharedArrayBuffer(SLAB_SIZE));
  prestarted = spawnKit(slabs, new Int32Array(new SharedArrayBuffer((RING + 1) * 4)));
}

function takePrestarted(): WorkerKit | null {
  const kit = prestarted;
  prestarted = null;
  return kit;
}

function spawnKit(slabs: SharedArrayBuffer[], states: Int32Array): WorkerKit | null {
  // The worker runs applyHostOps's own source: nothing to resolve or bundle, and it works the same
  // from the compiled modules, the bundle and a single-file executable.
  // Its modules are required by the source text itself, where no bundler rewrites the calls. A
  // transpiler that keeps function names (tsx, esbuild's keepNames) wraps inner functions in
  // __name(fn, name) calls: in the worker that helper need only hand the function back.
  const source = `var __name = (fn) => fn;\n(${workerMain.toString()})(${applyHostOps.toString()}, require('node:worker_threads'), require('node:fs'), (${newHostScratch.toString()})());`;
  let worker: Worker;
  try {
    worker = new Worker(source, { eval: true, workerData: { slabs, states, ring: RING } });
  } catch {
    return null;
  }
  worker.unref();
  // An unused worker's failure is nobody's concern; a host writer that takes it listens itself.
  worker.on('error', () => undefined);
  return { worker, slabs, states };
}

/**
 * The worker's side: it carries out each batch it is given unless the main thread took it first;
 * after a failure nothing more is done. Self-contained: it runs as source text.
 */
function workerMain(
  apply: typeof applyHostOps,
  threads: { parentPort: MessagePort; workerData: { slabs: SharedArrayBuffer[]; states: Int32Array; ring: number } },
  fs: HostFs,
  scratch: HostScratch,
): void {
  const { parentPort, workerData } = threads;
  const { states, ring } = workerData;
  const views = workerData.slabs.map((s) => Buffer.from(s));
  let failed: ReturnType<typeof applyHostOps> = null;
  parentPort.on('message', (m: { id: number; slab: number; nums: Float64Array; names: string }) => {
    const slot = m.id % ring;
    // 0: waiting, 1: taken, 2: done, 3: failed (as in the main thread's constants).
    if (Atomics.compareExchange(states, slot, 0, 1) !== 0) return;
    if (!failed) failed = apply(fs, m.nums, m.names.split('\0'), m.slab >= 0 ? views[m.slab] : null, scratch);
    Atomics.store(states, slot, failed ? 3 : 2);
    // Said only when the main thread needs to know now (see LISTENING, at index `ring`).
    if (failed || m.slab >= 0 || Atomics.load(states, ring) === 1) parentPort.postMessage({ id: m.id, failure: failed });
  });
}
