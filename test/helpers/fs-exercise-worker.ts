import { parentPort } from 'node:worker_threads';
import { openImage } from '../../src/formats/open.js';
import { openFilesystem } from '../../src/filesystems/open.js';
import { VdiskError } from '../../src/errors.js';

/**
 * Runs every read-only operation of a file system over one image and reports how it ended. It runs in a
 * worker so that the test can stop it when it hangs, even in a loop that never yields, and bound its heap.
 */

export interface ExerciseResult {
  ok: boolean;
  typed?: boolean;
  code?: string;
  message?: string;
  entries?: number;
}

const MAX_ENTRIES = 5000;
const MAX_BYTES = 64 * 1024 * 1024;

async function exercise(file: string): Promise<ExerciseResult> {
  let entries = 0;
  try {
    const image = await openImage(file);
    try {
      const fs = await openFilesystem(image);
      let bytes = 0;
      const walk = async (dir: string, depth: number): Promise<void> => {
        for (const e of await fs.readdir(dir)) {
          if (++entries > MAX_ENTRIES) return;
          const p = dir === '/' ? `/${e.name}` : `${dir}/${e.name}`;
          // A name the volume holds may be one the walker cannot reach (a '/' inside it): that is an error, typed.
          let st;
          try {
            st = await fs.lstat(p);
          } catch (err) {
            if (err instanceof VdiskError && err.code === 'NOT_FOUND') continue;
            throw err;
          }
          if (st.type === 'directory') {
            if (depth < 20) await walk(p, depth + 1);
          } else if (st.type === 'file') {
            const f = await fs.open(p);
            await f.dataRanges?.();
            const buf = Buffer.alloc(256 * 1024);
            for (let at = 0; at < f.size && bytes < MAX_BYTES; at += buf.length) {
              const n = await f.read(buf, at);
              if (n <= 0) throw new Error(`short read at ${at} of ${f.size}`);
              bytes += n;
            }
          }
        }
      };
      await walk('/', 0);
      let free = 0;
      for await (const r of fs.freeExtents()) {
        if (r.length <= 0 || r.offset < 0) throw new Error(`bad free extent ${JSON.stringify(r)}`);
        if (++free > 1_000_000) break;
      }
      await fs.close();
    } finally {
      await image.close();
    }
    return { ok: true, entries };
  } catch (err) {
    if (err instanceof VdiskError) return { ok: false, typed: true, code: err.code, message: err.message, entries };
    return { ok: false, typed: false, message: (err as Error)?.stack ?? String(err), entries };
  }
}

parentPort?.on('message', (file: string) => {
  void exercise(file).then((r) => parentPort?.postMessage(r));
});
