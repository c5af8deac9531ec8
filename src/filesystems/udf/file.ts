import type { ByteRange, FsFile } from '../filesystem.js';
import { awaitedLater } from '../../util/promises.js';

/**
 * A file's bytes (ECMA-167 4/12): embedded in its entry, or its extents in order, unrecorded ones
 * (allocated or not) reading as zeros, as bytes past the last extent do.
 */

/** A piece of a file: `length` bytes from file offset `offset`, at logical block `block` of space `ref`. */
export interface Extent {
  offset: number;
  length: number;
  ref: number;
  block: number;
  recorded: boolean;
}

/** Fills `into` with an extent's bytes from byte `within` of it. */
export type ExtentReader = (x: Extent, within: number, into: Uint8Array) => Promise<void>;

/** The most read from the volume in one request, and how many requests are in flight for one read. */
const READ_PIECE = 1 << 20;
const IN_FLIGHT = 4;

export class UdfFile implements FsFile {
  readonly size: number;
  private readonly embedded: Buffer | null;
  private readonly extents: Extent[];
  private readonly readExtent: ExtentReader;

  constructor(size: number, embedded: Buffer | null, extents: Extent[], readExtent: ExtentReader) {
    this.size = size;
    this.embedded = embedded;
    this.extents = extents;
    this.readExtent = readExtent;
  }

  private find(position: number): number {
    let lo = 0;
    let hi = this.extents.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const x = this.extents[mid];
      if (position < x.offset) hi = mid - 1;
      else if (position >= x.offset + x.length) lo = mid + 1;
      else return mid;
    }
    return lo;
  }

  async read(buf: Uint8Array, position: number): Promise<number> {
    if (position >= this.size || buf.length === 0) return 0;
    const total = Math.min(buf.length, this.size - position);
    if (!this.embedded) {
      // The common case, a small file's bytes in one recorded extent read at once: one read, no piece list.
      const x = this.extents[this.find(position)];
      if (x && x.recorded && position >= x.offset && position + total <= x.offset + x.length && total <= READ_PIECE) {
        await this.readExtent(x, position - x.offset, buf.subarray(0, total));
        return total;
      }
    }
    const out = Buffer.from(buf.buffer, buf.byteOffset, total);
    if (this.embedded) {
      this.embedded.copy(out, 0, position, position + total);
      return total;
    }
    // The recorded pieces are read several at a time: on a page cache or a fast disk, reads in flight
    // together finish sooner than one after another.
    const pieces: Promise<void>[] = [];
    const flush = async () => {
      await Promise.all(pieces);
      pieces.length = 0;
    };
    let done = 0;
    let i = this.find(position);
    while (done < total) {
      const pos = position + done;
      const x = this.extents[i];
      if (!x || pos < x.offset) {
        // Past the last extent, or (never in valid lists) before the next: zeros.
        const upto = x ? Math.min(total, x.offset - position) : total;
        out.fill(0, done, upto);
        done = upto;
        continue;
      }
      const within = pos - x.offset;
      const n = Math.min(total - done, x.length - within, READ_PIECE);
      if (x.recorded) {
        pieces.push(awaitedLater(this.readExtent(x, within, out.subarray(done, done + n))));
        if (pieces.length >= IN_FLIGHT) await flush();
      } else {
        out.fill(0, done, done + n);
      }
      done += n;
      if (within + n >= x.length) i++;
    }
    await flush();
    return total;
  }

  async dataRanges(): Promise<ByteRange[]> {
    if (this.embedded) return this.size ? [{ offset: 0, length: this.size }] : [];
    const out: ByteRange[] = [];
    for (const x of this.extents) {
      if (!x.recorded || x.offset >= this.size) continue;
      const length = Math.min(x.length, this.size - x.offset);
      const prev = out[out.length - 1];
      if (prev && prev.offset + prev.length === x.offset) prev.length += length;
      else out.push({ offset: x.offset, length });
    }
    return out;
  }
}
