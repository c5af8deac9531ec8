import { inflate, inflateSync } from 'node:zlib';
import { promisify } from 'node:util';
import { decompress as zstdDecompress } from 'fzstd';
import { VdiskError } from '../../errors.js';
import { COMPRESSORS } from './superblock.js';
import { lz4DecodeBlock } from './lz4.js';
import { lzoDecodeBlock } from './lzo.js';
import { xzDecodeBlock, XzUnsupported } from './xz.js';

const inflateAsync = promisify(inflate);

/** Decompresses one block into at most `limit` bytes; a plain Error is damage the caller names. */
export type Decompressor = (data: Buffer, limit: number) => Buffer | Promise<Buffer>;

/**
 * Blocks up to this size (metadata blocks: 8 KiB) inflate on the calling thread: an asynchronous
 * inflate costs the main thread about 0.15 ms of stream and handle set-up whatever the size, several
 * times what inflating 8 KiB takes, and a walk inflates a metadata block every few dozen entries.
 */
const SYNC_INFLATE = 8192;

function gzip(data: Buffer, limit: number): Buffer | Promise<Buffer> {
  // squashfs's "gzip" is a zlib stream (RFC 1950), one per block; data blocks async, so they inflate in parallel.
  const options = { maxOutputLength: limit, chunkSize: Math.max(limit, 64) };
  return limit <= SYNC_INFLATE ? inflateSync(data, options) : inflateAsync(data, options);
}

function zstd(data: Buffer, limit: number): Buffer {
  const out = zstdDecompress(data, new Uint8Array(limit));
  return Buffer.from(out.buffer, out.byteOffset, out.length);
}

function lz4(data: Buffer, limit: number): Buffer {
  const out = Buffer.alloc(limit);
  return out.subarray(0, lz4DecodeBlock(data, out));
}

function xz(data: Buffer, limit: number): Buffer {
  const out = Buffer.alloc(limit);
  return out.subarray(0, xzDecodeBlock(data, out));
}

function lzo(data: Buffer, limit: number): Buffer {
  const out = Buffer.alloc(limit);
  return out.subarray(0, lzoDecodeBlock(data, out));
}

/**
 * The decompressor the superblock names. lzma (the old format mksquashfs no longer writes) has no
 * decoder: refused by name at the first compressed block, so that an image written with -noI -noD
 * -noF -noX still reads whatever its compressor.
 */
export function decompressorFor(id: number, name: string): Decompressor {
  switch (id) {
    case 1: return gzip;
    case 3: return lzo;
    case 4:
      return (data, limit) => {
        try {
          return xz(data, limit);
        } catch (err) {
          if (err instanceof XzUnsupported) throw new VdiskError('UNSUPPORTED', `${name}: squashfs block compressed with the ${err.message}, which cannot be read`);
          throw err;
        }
      };
    case 5: return lz4;
    case 6: return zstd;
    default: {
      const what = COMPRESSORS[id];
      if (what) {
        return () => {
          throw new VdiskError('UNSUPPORTED', `${name}: squashfs compressed with ${what} cannot be read (gzip, lz4, lzo, xz and zstd can)`);
        };
      }
      throw new VdiskError('CORRUPT', `${name}: squashfs superblock: unknown compressor ${id}`);
    }
  }
}

/** Runs a decompressor, naming the block in the message of whatever it throws. */
export async function decompressBlock(fn: Decompressor, data: Buffer, limit: number, where: string): Promise<Buffer> {
  try {
    return await fn(data, limit);
  } catch (err) {
    if (err instanceof VdiskError) throw err;
    throw new VdiskError('CORRUPT', `${where} does not decompress: ${String((err as Error)?.message ?? err).split('\n')[0]}`);
  }
}
