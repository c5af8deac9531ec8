import { inflateSync } from 'node:zlib';
import { VdiskError } from '../../errors.js';
import type { ByteRange, FsFile } from '../filesystem.js';

/**
 * zisofs (the transparent compression of mkzftree and libisofs, announced by Rock Ridge ZF "pz"): the
 * stored file starts with a 16-byte header (magic, uncompressed size, header size / 4, log2 of the
 * block size 15-17), then a table of block pointers (byte offsets into the stored file, one more
 * than there are blocks), then each block as a zlib stream; a block whose pointers are equal is zeros.
 */

const MAGIC = Buffer.from([0x37, 0xe4, 0x53, 0x96, 0xc9, 0xdb, 0xd6, 0x07]);
/** A block compresses to at most a little more than itself; more is damage. */
const SLACK = 1024;

export class ZisofsFile implements FsFile {
  readonly size: number;
  private readonly stored: FsFile;
  private readonly where: string;
  private readonly blockSize: number;
  private readonly pointers: number[];
  /** The last block inflated: sequential reads smaller than a block need it again. */
  private last: { index: number; data: Buffer } | null = null;

  private constructor(stored: FsFile, size: number, blockSize: number, pointers: number[], where: string) {
    this.stored = stored;
    this.size = size;
    this.blockSize = blockSize;
    this.pointers = pointers;
    this.where = where;
  }

  /** Checks the header against what ZF said and reads the block pointers (at most 512 KiB: 2^32 / 2^15 blocks). */
  static async open(stored: FsFile, size: number, where: string): Promise<ZisofsFile> {
    const bad = (what: string) => new VdiskError('CORRUPT', `${where}: zisofs ${what}`);
    const head = Buffer.alloc(16);
    if ((await stored.read(head, 0)) < 16 || !head.subarray(0, 8).equals(MAGIC)) throw bad('header magic missing');
    if (head.readUInt32LE(8) !== size) throw bad(`header size ${head.readUInt32LE(8)} differs from the ${size} Rock Ridge ZF states`);
    const headerSize = head[12] * 4;
    const log2 = head[13];
    if (headerSize < 16 || log2 < 15 || log2 > 17) throw bad(`header size ${headerSize} or block size 2^${log2} out of range`);
    const blockSize = 2 ** log2;
    const blocks = Math.ceil(size / blockSize);
    const table = Buffer.alloc((blocks + 1) * 4);
    if ((await stored.read(table, headerSize)) < table.length) throw bad('block pointer table runs past the stored data');
    const pointers: number[] = [];
    for (let i = 0; i <= blocks; i++) {
      const p = table.readUInt32LE(i * 4);
      if (p > stored.size || (i > 0 && p < pointers[i - 1]) || (i === 0 && p < headerSize + table.length)) {
        throw bad(`block pointer ${i} (${p}) is out of order or past the stored ${stored.size} bytes`);
      }
      if (i > 0 && p - pointers[i - 1] > blockSize + SLACK) throw bad(`block ${i - 1} claims ${p - pointers[i - 1]} compressed bytes`);
      pointers.push(p);
    }
    return new ZisofsFile(stored, size, blockSize, pointers, where);
  }

  private async block(index: number): Promise<Buffer> {
    if (this.last?.index === index) return this.last.data;
    const want = Math.min(this.blockSize, this.size - index * this.blockSize);
    const from = this.pointers[index];
    const length = this.pointers[index + 1] - from;
    let data: Buffer;
    if (length === 0) data = Buffer.alloc(want);
    else {
      const packed = Buffer.alloc(length);
      await this.stored.read(packed, from);
      try {
        data = inflateSync(packed, { maxOutputLength: this.blockSize });
      } catch (err) {
        throw new VdiskError('CORRUPT', `${this.where}: zisofs block ${index} does not inflate: ${(err as Error).message.split('\n')[0]}`);
      }
      if (data.length !== want) throw new VdiskError('CORRUPT', `${this.where}: zisofs block ${index} inflates to ${data.length} bytes, not ${want}`);
    }
    this.last = { index, data };
    return data;
  }

  async read(buf: Uint8Array, position: number): Promise<number> {
    const want = Math.max(0, Math.min(buf.length, this.size - position));
    let done = 0;
    while (done < want) {
      const at = position + done;
      const index = Math.floor(at / this.blockSize);
      const data = await this.block(index);
      const from = at - index * this.blockSize;
      const n = Math.min(want - done, data.length - from);
      buf.set(data.subarray(from, from + n), done);
      done += n;
    }
    return want;
  }

  /** Blocks stored as nothing are holes. */
  async dataRanges(): Promise<ByteRange[]> {
    const out: ByteRange[] = [];
    for (let i = 0; i + 1 < this.pointers.length; i++) {
      if (this.pointers[i + 1] === this.pointers[i]) continue;
      const offset = i * this.blockSize;
      const length = Math.min(this.blockSize, this.size - offset);
      const prev = out[out.length - 1];
      if (prev && prev.offset + prev.length === offset) prev.length += length;
      else out.push({ offset, length });
    }
    return out;
  }
}
