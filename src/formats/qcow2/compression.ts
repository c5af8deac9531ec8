import { constants, deflateRaw, inflateRaw } from 'node:zlib';
import { promisify } from 'node:util';
import { decompress as zstdDecompress } from 'fzstd';
import { corrupt } from '../../errors.js';
import { COMPRESSION_ZSTD } from './constants.js';

const inflateRawAsync = promisify(inflateRaw);
const deflateRawAsync = promisify(deflateRaw);

/**
 * A compressed cluster's data (qcow2.txt "Compressed Clusters Descriptor"): raw deflate with a
 * 4 KiB window, or a zstd frame. The stored bytes run to a sector's end, past the stream, so the
 * stream is read until the cluster is full; output beyond a cluster is refused, never allocated.
 */
export async function decompressCluster(path: string, type: number, data: Buffer, clusterSize: number, where: number): Promise<Buffer> {
  let out: Buffer | Uint8Array;
  try {
    if (type === COMPRESSION_ZSTD) {
      out = zstdFrame(data, clusterSize);
    } else {
      out = await inflateRawAsync(data, { maxOutputLength: clusterSize, finishFlush: constants.Z_SYNC_FLUSH });
    }
  } catch (err) {
    throw corrupt(path, `qcow2 compressed cluster at ${where}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (out.length !== clusterSize) throw corrupt(path, `qcow2 compressed cluster at ${where} holds ${out.length} bytes, not a cluster's ${clusterSize}`);
  return Buffer.from(out.buffer, out.byteOffset, out.length);
}

/**
 * One zstd frame into a cluster-sized buffer. The stored bytes run on past the frame (to a sector's
 * end), which fzstd would take for a next frame: the frame's length is found from its block headers
 * first (RFC 8878 section 3.1.1).
 */
function zstdFrame(data: Buffer, clusterSize: number): Uint8Array {
  if (data.length < 6 || data.readUInt32LE(0) !== 0xfd2fb528) throw new Error('no zstd frame magic');
  const fhd = data[4];
  const single = (fhd >> 5) & 1;
  const fcsFlag = fhd >> 6;
  let at = 5 + (single ? 0 : 1) + [0, 1, 2, 4][fhd & 3] + [single, 2, 4, 8][fcsFlag];
  for (let blocks = 0; ; blocks++) {
    if (at + 3 > data.length || blocks > clusterSize) throw new Error('zstd frame runs past its data');
    const h = data[at] | (data[at + 1] << 8) | (data[at + 2] << 16);
    const type = (h >> 1) & 3;
    const size = h >>> 3;
    if (type === 3) throw new Error('reserved zstd block type');
    at += 3 + (type === 1 ? 1 : size);
    if (h & 1) break;
  }
  if ((fhd >> 2) & 1) at += 4;
  if (at > data.length) throw new Error('zstd frame runs past its data');
  return zstdDecompress(data.subarray(0, at), new Uint8Array(clusterSize));
}

/**
 * Raw deflate with a 2^12 window, so QEMU's 4 KiB-window inflate reads it. QEMU asks for memLevel 9;
 * Node's zlib (Chromium's) compressed worse with it in a measurement, so its default stays.
 */
export function deflateCluster(data: Buffer): Promise<Buffer> {
  return deflateRawAsync(data, { windowBits: 12, level: constants.Z_DEFAULT_COMPRESSION });
}

/** The zstd encoder, loaded on first use: a WebAssembly build of libzstd that only `-c` with zstd needs. */
let zstdEncoder: Promise<{ compress(data: Uint8Array, level?: number): Uint8Array }> | null = null;

/**
 * One cluster compressed as the image's header says: raw deflate (above) or one zstd frame at
 * libzstd's default level, which is what QEMU writes (ZSTD_CLEVEL_DEFAULT). zstd runs on the main
 * thread, one cluster at a time; deflate runs on zlib's thread pool.
 */
export async function compressCluster(type: number, data: Buffer): Promise<Buffer> {
  if (type !== COMPRESSION_ZSTD) return deflateCluster(data);
  zstdEncoder ??= import('@hpcc-js/wasm-zstd').then((m) => m.Zstd.load());
  const z = (await zstdEncoder).compress(data, 3);
  return Buffer.from(z.buffer, z.byteOffset, z.length);
}

