import { isZero } from '../../io/buffers.js';
import type { PositionalFile } from '../../io/file.js';
import type { CreateRequest } from '../driver.js';
import type { DiskImage } from '../image.js';
import { compressCluster } from './compression.js';
import { MiB, roundUp } from './constants.js';
import { createQcow2, qcow2Options } from './create.js';
import { Qcow2Image } from './qcow2-image.js';

const WINDOW = 1024 ** 3;
const CHUNK = 4 * MiB;
/** Bytes of clusters being compressed at once: enough to keep zlib's thread pool busy. */
const IN_FLIGHT_BYTES = 16 * MiB;

/**
 * `convert -O qcow2 -o compress=on` (qemu-img convert -c): a new image whose data clusters are
 * stored compressed (deflate, or zstd when -o compression_type=zstd), in guest order, packed one after another; a cluster that does not shrink is
 * stored as it is, and clusters of zeros not at all. Compression runs on zlib's thread pool, several
 * clusters at a time, written in order as they finish.
 */
export async function convertCompressed(source: DiskImage, file: PositionalFile, req: CreateRequest, onProgress?: (done: number, total: number) => void): Promise<boolean> {
  if (!qcow2Options(req).compress) return false;
  await createQcow2(file, req);
  const image = await Qcow2Image.open(file, null);
  try {
    const cs = image.clusterSize;
    const size = image.virtualSize;
    const type = image.layout.header.compressionType;
    const queue: { cluster: number; raw: Buffer; z: Promise<Buffer> }[] = [];
    const drain = async (keep: number) => {
      while (queue.length > keep) {
        const { cluster, raw, z } = queue.shift() as (typeof queue)[number];
        const packed = await z;
        if (packed.length < cs) await image.writeCompressed(cluster, packed);
        else await image.write(raw.subarray(0, Math.min(cs, size - cluster * cs)), cluster * cs);
      }
    };
    let doneTo = 0;
    for (let at = 0; at < size; at += WINDOW) {
      for (const e of await source.blockStatus(at, Math.min(WINDOW, size - at))) {
        if (e.state !== 'data') continue;
        const to = Math.min(size, roundUp(e.offset + e.length, cs));
        for (let p = Math.max(doneTo, Math.floor(e.offset / cs) * cs); p < to; ) {
          const n = Math.min(CHUNK, to - p);
          const buf = Buffer.alloc(roundUp(n, cs));
          await source.read(buf.subarray(0, n), p);
          for (let c = 0; c < buf.length; c += cs) {
            const raw = buf.subarray(c, c + cs);
            if (isZero(raw)) continue;
            queue.push({ cluster: (p + c) / cs, raw, z: compressCluster(type, raw) });
            queue[queue.length - 1].z.catch(() => undefined);
            await drain(Math.max(4, IN_FLIGHT_BYTES / cs));
          }
          p += n;
          doneTo = p;
          onProgress?.(p, size);
        }
      }
    }
    await drain(0);
    await image.flush();
  } finally {
    await image.close();
  }
  onProgress?.(source.virtualSize, source.virtualSize);
  return true;
}
