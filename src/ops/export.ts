import { constants } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { isatty } from 'node:tty';
import { PositionalFile } from '../io/file.js';
import { VdiskError, fromSystemError } from '../errors.js';
import type { DiskImage } from '../formats/image.js';
import { ReplacingOutput, type OutputPlace } from '../io/output.js';
import { exportImage, type ExportOptions } from '../formats/export-stream.js';

export { exportImage, type ExportOptions, type ExportTarget } from '../formats/export-stream.js';

export interface ExportToOptions extends ExportOptions {
  /** Flush a device written in place at the end (a new file is always made durable before its rename). */
  sync?: boolean;
}

/**
 * Writes the disk (or a range of it) to an output as `read` and `convert -O raw` do: a regular file
 * (or nothing yet) becomes a new sparse file renamed into place; a block device is written in place,
 * every byte, under an exclusive lock; a character device, FIFO or descriptor is written in order.
 * Nothing is truncated or removed that this call did not make.
 */
export async function exportTo(image: DiskImage, place: OutputPlace, options: ExportToOptions = {}): Promise<number> {
  await refuseChainOutput(image, place);
  const length = options.length ?? image.virtualSize - (options.offset ?? 0);
  switch (place.kind) {
    case 'fd':
      // tty.isatty, not process.stdout.isTTY: touching process.stdout makes fd 1 non-blocking, and the
      // export writes to fd 1 directly.
      if (isatty(place.fd)) {
        throw new VdiskError('USAGE', 'refusing to write disk bytes to a terminal; name an OUTPUT file or redirect stdout');
      }
      return exportImage(image, { kind: 'fd', fd: place.fd, name: place.name }, options);
    case 'stream': {
      let handle;
      try {
        // No O_TRUNC and no O_CREAT: the node is written as it is, never made or emptied.
        handle = await open(place.path, constants.O_WRONLY);
      } catch (err) {
        throw fromSystemError(err, place.path, 'opening the output');
      }
      try {
        return await exportImage(image, { kind: 'fd', fd: handle.fd, name: place.path }, options);
      } finally {
        await handle.close();
      }
    }
    case 'block': {
      const dev = await PositionalFile.open(place.path, 'rw', { lock: 'exclusive' });
      try {
        if (dev.size() < length) {
          throw new VdiskError('RANGE', `${place.path}: the device holds ${dev.size()} bytes, fewer than the ${length} to write; nothing was written`);
        }
        const n = await exportImage(image, { kind: 'open', file: dev, holes: false }, options);
        if (options.sync) await dev.flush();
        return n;
      } finally {
        await dev.close();
      }
    }
    case 'file': {
      const out = await ReplacingOutput.begin(place.path, place.existing);
      try {
        const n = await exportImage(image, { kind: 'open', file: out.file, holes: true }, options);
        await out.file.close();
        await out.commit();
        return n;
      } catch (err) {
        await out.abort();
        throw err;
      }
    }
  }
}

/**
 * Refuses an output that is the image itself or any image it reads through (a differencing image's
 * parents): writing it would destroy what is being read.
 */
export async function refuseChainOutput(image: DiskImage, place: OutputPlace): Promise<void> {
  if (place.kind === 'fd' || place.kind === 'stream' || !place.existing) return;
  const target = place.existing;
  let current: DiskImage | null = image;
  // The chain's own depth bound (openBacking refuses past 16) ends this loop.
  for (let depth = 0; current && depth <= 64; depth++) {
    for (const name of [current.filename, ...(current.otherFiles ?? [])]) {
      const st = await stat(name).catch(() => null);
      if (st && st.dev === target.dev && st.ino === target.ino) {
        const what = depth === 0 ? (name === image.filename ? 'the image itself' : `${name}, a file of ${image.filename}`) : `${current.filename}, ${depth === 1 ? 'the parent' : 'an ancestor'} of ${image.filename}`;
        throw new VdiskError('USAGE', `${place.path}: OUTPUT is ${what}; refusing to overwrite it`);
      }
    }
    current = (await current.backingImage?.()) ?? null;
  }
}
