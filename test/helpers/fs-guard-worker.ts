import { parentPort } from 'node:worker_threads';
import { driverFor } from '../../src/filesystems/readers.js';
import { Filesystem } from '../../src/filesystems/filesystem.js';
import { openImage } from '../../src/formats/open.js';
import { openFilesystem } from '../../src/filesystems/open.js';
import { VdiskError } from '../../src/errors.js';
import { memoryVolume } from './memory.js';
import { exerciseFilesystem } from './hostile-look.js';
import type { ExerciseResult, FileRequest, GuardRequest, GuardReply } from './fs-guard.js';

/**
 * The worker side of FsGuard: exercises one volume, held in memory and opened with the driver named,
 * or an image file opened as the commands open it, and says how that ended. Run in a worker so that a
 * loop that never yields is a timeout, not a hung suite.
 */
async function exercise(m: GuardRequest): Promise<GuardReply> {
  try {
    const driver = driverFor(m.driver);
    if (!driver) throw new Error(`no driver for ${m.driver}`);
    const reader = await driver.open(memoryVolume(Buffer.from(m.bytes.buffer, m.bytes.byteOffset, m.bytes.length), m.maxRead), { name: m.name });
    await exerciseFilesystem(new Filesystem(reader, m.name));
    for (const w of reader.warnings) if (w.includes('\n')) throw new Error(`a warning of more than one line: ${w}`);
    return { id: m.id, ok: true };
  } catch (err) {
    if (err instanceof VdiskError) return { id: m.id, ok: false, code: err.code, message: err.message };
    return { id: m.id, ok: false, message: String((err as Error)?.stack ?? err) };
  }
}

const MAX_ENTRIES = 5000;
const MAX_BYTES = 64 * 1024 * 1024;

/** Every read-only look at an image file's file system, bounded: entries met, or the error, typed or not. */
async function exerciseFile(file: string): Promise<ExerciseResult> {
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

parentPort?.on('message', (m: GuardRequest | FileRequest) => {
  if ('file' in m) void exerciseFile(m.file).then((r) => parentPort?.postMessage({ ...r, id: m.id }));
  else void exercise(m).then((r) => parentPort?.postMessage(r));
});
