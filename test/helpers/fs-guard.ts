import { Worker } from 'node:worker_threads';
import { VdiskError, type ErrorCode } from '../../src/errors.js';

/** A volume held in memory, opened with the driver for `driver` (a type such as 'ext4', 'squashfs'). */
export interface GuardRequest {
  id: number;
  driver: string;
  bytes: Uint8Array;
  name: string;
  /** Reads longer than this fail the case (see memoryVolume). */
  maxRead?: number;
}

/** An image file, opened as the commands open it (format, partitions, file system). */
export interface FileRequest {
  id: number;
  file: string;
}

export type GuardReply = { id: number; ok: true } | { id: number; ok: false; code?: ErrorCode; message: string };

/** How exercising an image file ended: entries met, and the error if any (typed: a VdiskError). */
export interface ExerciseResult {
  ok: boolean;
  typed?: boolean;
  code?: string;
  message?: string;
  entries?: number;
}

/** The heap a case may use: a reader that allocates by a field nobody checked runs out of it and the case fails. */
const HEAP_MB = 256;

/**
 * Exercises mutated volumes (every look a user can take: walk, stat, links, xattrs, reads, free space)
 * in a worker thread, one case at a time. A case that takes longer than its time fails as a hang even
 * when the reader loops without ever yielding, which a timer in the test's own thread could not see;
 * one that exhausts the worker's heap fails as unbounded memory. The worker is replaced after either.
 */
export class FsGuard {
  private worker: Worker | null = null;
  private ids = 0;

  /**
   * A volume in memory through the driver for `driver`, bounded by `ms`: resolves when every look
   * succeeded; a VdiskError comes back as a VdiskError, anything else (a hang, a dead worker, an untyped
   * error, a warning of several lines) as an Error saying so.
   */
  async exercise(driver: string, bytes: Buffer, name: string, ms: number, maxRead?: number): Promise<void> {
    const r = await this.call<GuardReply>({ id: ++this.ids, driver, bytes, name, maxRead } satisfies GuardRequest, ms);
    if (r === 'timeout') throw new Error(`hang: ${name} (${driver}) took over ${ms} ms`);
    if (r === 'died') throw new Error(`the reader's worker died on ${name} (${driver}): heap past ${HEAP_MB} MiB?`);
    if (r.ok) return;
    if (r.code) throw new VdiskError(r.code, r.message);
    throw new Error(`not a VdiskError: ${r.message}`);
  }

  /** An image file opened as the commands open it, bounded by `ms`. */
  async run(file: string, ms: number): Promise<ExerciseResult | 'timeout' | 'died'> {
    const r = await this.call<ExerciseResult & { id?: number }>({ id: ++this.ids, file } satisfies FileRequest, ms);
    if (typeof r === 'string') return r;
    delete r.id;
    return r;
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    await w?.terminate();
  }

  private call<R>(request: GuardRequest | FileRequest, ms: number): Promise<R | 'timeout' | 'died'> {
    const w = (this.worker ??= this.start());
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        cleanup();
        this.stop(w);
        resolve('timeout');
      }, ms);
      const onMessage = (r: R & { id: number }) => {
        if (r.id !== request.id) return;
        cleanup();
        resolve(r);
      };
      const onExit = () => {
        cleanup();
        this.stop(w);
        resolve('died');
      };
      const cleanup = () => {
        clearTimeout(timer);
        w.off('message', onMessage);
        w.off('exit', onExit);
        w.off('error', onExit);
      };
      w.on('message', onMessage);
      w.on('exit', onExit);
      w.on('error', onExit);
      w.postMessage(request);
    });
  }

  private start(): Worker {
    // The worker loads TypeScript through tsx, which it registers itself (workers do not inherit --import).
    const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'));
    const script = JSON.stringify(new URL('./fs-guard-worker.ts', import.meta.url).href);
    return new Worker(`import(${tsx}).then((m) => { m.register(); return import(${script}); })`, {
      eval: true,
      resourceLimits: { maxOldGenerationSizeMb: HEAP_MB },
    });
  }

  private stop(w: Worker): void {
    if (this.worker === w) this.worker = null;
    void w.terminate();
  }
}
