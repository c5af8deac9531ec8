import { VdiskError } from '../../errors.js';
import type { ByteRange, FsFile } from '../filesystem.js';
import type { VolumeReader } from '../types.js';
import { lznt1Decompress } from './lznt1.js';
import { ATTR_COMPRESSED, type Attribute } from './record.js';
import { findRun, type Run } from './runlist.js';
import { awaitedLater } from '../../util/promises.js';

/**
 * The bytes of one attribute (a data stream, an index allocation, $MFT itself): resident values,
 * non-resident runs with sparse runs as zeros, bytes past the initialized size as zeros, and
 * LZNT1-compressed units (NTFS Documentation, "Compression"): a unit of 2^compressionUnit clusters is
 * stored raw when all its clusters are allocated, is zeros when none is, and else holds LZNT1 data in its
 * allocated clusters.
 */

/** The largest compression unit we decompress; NTFS writes 16 clusters of at most 4 KiB. */
const MAX_UNIT_BYTES = 4 * 1024 * 1024;
/** Reads of the volume are issued in pieces no larger than this, a few at a time. */
const PIECE = 4 * 1024 * 1024;

export class AttributeStream implements FsFile {
  readonly size: number;
  private readonly attr: Attribute;
  private readonly volume: VolumeReader;
  private readonly cluster: number;
  private readonly what: string;
  private readonly compressed: boolean;
  private readonly unitClusters: number;
  /** Bytes past this read as zeros (the valid-data length). */
  private readonly initialized: number;
  /** The last decompressed unit, for the many small reads a caller may make in one unit. */
  private unitCache: { vcn: number; data: Buffer } | null = null;

  constructor(volume: VolumeReader, cluster: number, attr: Attribute, what: string) {
    this.volume = volume;
    this.cluster = cluster;
    this.attr = attr;
    this.what = what;
    this.size = attr.dataSize;
    this.compressed = !attr.resident && (attr.flags & ATTR_COMPRESSED) !== 0 && attr.compressionUnit !== 0;
    this.unitClusters = 2 ** attr.compressionUnit;
    // A data size beyond the runs is caught where a read reaches the unmapped clusters.
    this.initialized = Math.min(attr.initializedSize, attr.dataSize);
    if (this.compressed && (attr.compressionUnit > 16 || this.unitClusters * cluster > MAX_UNIT_BYTES)) {
      throw new VdiskError('UNSUPPORTED', `${what}: compression unit of ${this.unitClusters} clusters of ${cluster} bytes is larger than NTFS writes`);
    }
  }

  private corrupt(what: string): VdiskError {
    return new VdiskError('CORRUPT', `${this.what}: ${what}`);
  }

  async read(buf: Uint8Array, position: number): Promise<number> {
    if (position >= this.size || buf.length === 0) return 0;
    const n = Math.min(buf.length, this.size - position);
    const out = buf.subarray(0, n);
    if (this.attr.resident) {
      out.set((this.attr.value as Buffer).subarray(position, position + n));
      return n;
    }
    // Past the initialized size the stream reads as zeros whatever the clusters hold.
    const valid = Math.max(0, Math.min(n, this.initialized - position));
    out.fill(0, valid);
    if (valid > 0) {
      if (this.compressed) await this.readCompressed(out.subarray(0, valid), position);
      else await this.readPlain(out.subarray(0, valid), position);
    }
    return n;
  }

  /** Reads through the runlist; sparse runs are zeros. Pieces are read concurrently. */
  private async readPlain(out: Uint8Array, position: number): Promise<void> {
    const jobs: Promise<void>[] = [];
    let done = 0;
    while (done < out.length) {
      const pos = position + done;
      const vcn = Math.floor(pos / this.cluster);
      const i = findRun(this.attr.runs, vcn);
      if (i < 0) throw this.corrupt(`no run maps cluster ${vcn}`);
      const run = this.attr.runs[i];
      const runEnd = (run.vcn + run.length) * this.cluster;
      const n = Math.min(out.length - done, runEnd - pos, PIECE);
      const target = out.subarray(done, done + n);
      if (run.lcn === null) target.fill(0);
      else {
        const at = run.lcn * this.cluster + (pos - run.vcn * this.cluster);
        // Straight into the caller's buffer where the volume can: no allocation, no second copy.
        jobs.push(awaitedLater(this.volume.readInto ? this.volume.readInto(target, at) : this.volume.read(at, n).then((b) => target.set(b.subarray(0, n)))));
        if (jobs.length >= 4) await Promise.all(jobs.splice(0));
      }
      done += n;
    }
    await Promise.all(jobs);
  }

  private async readCompressed(out: Uint8Array, position: number): Promise<void> {
    const unitBytes = this.unitClusters * this.cluster;
    let done = 0;
    while (done < out.length) {
      const pos = position + done;
      const unit = Math.floor(pos / unitBytes);
      const data = await this.unit(unit * this.unitClusters);
      const off = pos - unit * unitBytes;
      const n = Math.min(out.length - done, unitBytes - off);
      out.set(data.subarray(off, off + n), done);
      done += n;
    }
  }

  /** The clusters of the compression unit at `vcn` and their runs, in order. */
  private unitRuns(vcn: number): Run[] {
    const runs: Run[] = [];
    let v = vcn;
    const end = vcn + this.unitClusters;
    while (v < end && v <= this.attr.lastVcn) {
      const i = findRun(this.attr.runs, v);
      if (i < 0) throw this.corrupt(`no run maps cluster ${v}`);
      const r = this.attr.runs[i];
      const skip = v - r.vcn;
      const len = Math.min(r.length - skip, end - v);
      runs.push({ vcn: v, lcn: r.lcn === null ? null : r.lcn + skip, length: len });
      v += len;
    }
    return runs;
  }

  private async unit(vcn: number): Promise<Buffer> {
    if (this.unitCache?.vcn === vcn) return this.unitCache.data;
    const unitBytes = this.unitClusters * this.cluster;
    const runs = this.unitRuns(vcn);
    const allocated = runs.filter((r) => r.lcn !== null);
    const count = allocated.reduce((s, r) => s + r.length, 0);
    const data = Buffer.alloc(unitBytes);
    if (count === 0) {
      // A sparse unit: zeros.
    } else if (count === this.unitClusters) {
      // Did not compress: stored as is.
      let at = 0;
      for (const r of runs) {
        const b = await this.volume.read((r.lcn as number) * this.cluster, r.length * this.cluster);
        data.set(b, at);
        at += r.length * this.cluster;
      }
    } else {
      // Compressed: the allocated clusters come first and hold the LZNT1 stream.
      const firstSparse = runs.findIndex((r) => r.lcn === null);
      if (firstSparse >= 0 && runs.slice(firstSparse).some((r) => r.lcn !== null)) {
        throw this.corrupt(`compression unit at cluster ${vcn} has allocated clusters after its sparse tail`);
      }
      const src = Buffer.alloc(count * this.cluster);
      let at = 0;
      for (const r of allocated) {
        const b = await this.volume.read((r.lcn as number) * this.cluster, r.length * this.cluster);
        src.set(b, at);
        at += r.length * this.cluster;
      }
      const err = lznt1Decompress(src, data);
      if (err) throw this.corrupt(`compression unit at cluster ${vcn}: LZNT1 ${err}`);
    }
    this.unitCache = { vcn, data };
    return data;
  }

  /** The byte ranges backed by clusters (for compressed streams: units not wholly sparse), merged. */
  async dataRanges(): Promise<ByteRange[]> {
    if (this.attr.resident) return this.size > 0 ? [{ offset: 0, length: this.size }] : [];
    const out: ByteRange[] = [];
    const push = (offset: number, end: number) => {
      end = Math.min(end, this.size);
      if (end <= offset) return;
      const last = out[out.length - 1];
      if (last && last.offset + last.length >= offset) last.length = Math.max(last.length, end - last.offset);
      else out.push({ offset, length: end - offset });
    };
    if (!this.compressed) {
      for (const r of this.attr.runs) if (r.lcn !== null) push(r.vcn * this.cluster, (r.vcn + r.length) * this.cluster);
      return out;
    }
    const unitBytes = this.unitClusters * this.cluster;
    for (const r of this.attr.runs) {
      if (r.lcn === null) continue;
      const first = Math.floor(r.vcn / this.unitClusters);
      const last = Math.floor((r.vcn + r.length - 1) / this.unitClusters);
      push(first * unitBytes, (last + 1) * unitBytes);
    }
    return out;
  }
}
