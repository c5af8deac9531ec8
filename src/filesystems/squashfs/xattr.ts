import { VdiskError } from '../../errors.js';
import type { VolumeReader } from '../types.js';
import type { Metadata, MetaPos } from './metadata.js';
import { LookupTable } from './tables.js';
import { SUPERBLOCK_SIZE, type Superblock } from './superblock.js';

/**
 * The xattr tables: a header at xattr_id_table_start (where the key/value blocks start, how many ids),
 * then the index of the id blocks. An inode's xattr index picks an id entry (a reference to its first
 * key, a count, a size); each key is a type (namespace, and 0x100 when the value is stored out of line)
 * and a name, each value a length and bytes, or for an out-of-line value a reference to them.
 */

const PREFIXES = ['user.', 'trusted.', 'security.'];
const OUT_OF_LINE = 0x100;
/** Linux's limits: names of 255 bytes, values of 64 KiB. */
const MAX_NAME = 255;
const MAX_VALUE = 65536;
const MAX_PAIRS = 65536;

export class XattrTable {
  private readonly meta: Metadata;
  private readonly ids: LookupTable;
  /** Where the key/value metadata blocks start; they end at the id blocks' header. */
  private readonly kvStart: number;
  private readonly kvEnd: number;
  private readonly name: string;

  private constructor(meta: Metadata, ids: LookupTable, kvStart: number, kvEnd: number, name: string) {
    this.meta = meta;
    this.ids = ids;
    this.kvStart = kvStart;
    this.kvEnd = kvEnd;
    this.name = name;
  }

  static async open(volume: VolumeReader, meta: Metadata, sb: Superblock, name: string): Promise<XattrTable | null> {
    if (sb.xattrIdTable === null) return null;
    const h = await volume.read(sb.xattrIdTable, 16);
    const kv = h.readBigUInt64LE(0);
    const count = h.readUInt32LE(8);
    if (kv < BigInt(SUPERBLOCK_SIZE) || kv >= BigInt(sb.xattrIdTable)) {
      throw new VdiskError('CORRUPT', `${name}: squashfs xattr id table: key/value table start ${kv} is not before the id table at ${sb.xattrIdTable}`);
    }
    const ids = new LookupTable({ volume, meta, name, what: 'xattr id table', index: sb.xattrIdTable + 16, floor: Number(kv), count, entrySize: 16, bytesUsed: sb.bytesUsed });
    return new XattrTable(meta, ids, Number(kv), sb.xattrIdTable, name);
  }

  private pos(ref: bigint): MetaPos {
    return { block: this.kvStart + Number(ref >> 16n), offset: Number(ref & 0xffffn) };
  }

  async read(index: number, where: string): Promise<{ name: string; value: Buffer }[]> {
    const e = await this.ids.entry(index);
    const count = e.readUInt32LE(8);
    const bad = (m: string) => new VdiskError('CORRUPT', `${where}: xattr ${index}: ${m}`);
    if (count > MAX_PAIRS) throw bad(`${count} attributes`);
    const at = this.pos(e.readBigUInt64LE(0));
    if (at.block >= this.kvEnd) throw bad('reference points past the key/value table');
    const read = async (p: MetaPos, n: number) => {
      const r = await this.meta.read(p, n, this.kvEnd, 'xattr table');
      Object.assign(p, r.next);
      return r.data;
    };
    const out: { name: string; value: Buffer }[] = [];
    for (let i = 0; i < count; i++) {
      const k = await read(at, 4);
      const type = k.readUInt16LE(0);
      const len = k.readUInt16LE(2);
      const prefix = PREFIXES[type & 0xff];
      if (prefix === undefined || (type & ~(0xff | OUT_OF_LINE)) !== 0) throw bad(`unknown attribute type 0x${type.toString(16)}`);
      if (len > MAX_NAME) throw bad(`name of ${len} bytes`);
      const name = prefix + (await read(at, len)).toString('utf8');
      const vlen = (await read(at, 4)).readUInt32LE(0);
      if (vlen > MAX_VALUE) throw bad(`${name}: value of ${vlen} bytes`);
      let value = await read(at, vlen);
      if (type & OUT_OF_LINE) {
        if (vlen !== 8) throw bad(`${name}: out-of-line value reference of ${vlen} bytes, not 8`);
        const p = this.pos(value.readBigUInt64LE(0));
        if (p.block >= this.kvEnd) throw bad(`${name}: out-of-line value reference points past the key/value table`);
        const n = (await read(p, 4)).readUInt32LE(0);
        if (n > MAX_VALUE) throw bad(`${name}: out-of-line value of ${n} bytes`);
        value = await read(p, n);
      }
      out.push({ name, value: Buffer.from(value) });
    }
    return out;
  }
}
