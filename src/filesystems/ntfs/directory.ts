import { VdiskError } from '../../errors.js';
import type { VolumeReader } from '../types.js';
import { NS_DOS, type FileName } from './file-name.js';
import { INDEX_LARGE, parseIndexBlock, parseIndexRoot, type IndexEntry } from './index-node.js';
import type { NtfsFile } from './mft.js';
import { AT } from './record.js';
import { AttributeStream } from './stream.js';
import type { UpCase } from './upcase.js';

/**
 * A directory's $I30 index: a B-tree of $FILE_NAME keys, its root in $INDEX_ROOT and its other nodes
 * in the INDX blocks of $INDEX_ALLOCATION. Walked iteratively with a set of visited nodes, so a
 * corrupt child pointer that loops ends in an error instead of a hang.
 */

const I30 = '$I30';

export interface DirEntryKey {
  record: number;
  key: FileName;
}

export class DirectoryIndex {
  private readonly root: IndexEntry[];
  private readonly alloc: AttributeStream | null;
  private readonly blockSize: number;
  /** INDX blocks are addressed in clusters, or in 512-byte units when a block is smaller than a cluster. */
  private readonly vcnSize: number;
  private readonly maxNodes: number;
  private readonly what: string;

  constructor(volume: VolumeReader, clusterSize: number, file: NtfsFile, what: string) {
    this.what = what;
    const rootAttr = file.attributes.find((a) => a.type === AT.INDEX_ROOT && a.name === I30);
    if (!rootAttr || !rootAttr.resident) throw this.corrupt('directory without a resident $INDEX_ROOT $I30');
    const root = parseIndexRoot(rootAttr.value as Buffer);
    if (typeof root === 'string') throw this.corrupt(`$INDEX_ROOT: ${root}`);
    this.root = root.entries;
    this.blockSize = root.blockSize;
    this.vcnSize = root.blockSize >= clusterSize ? clusterSize : 512;
    const allocAttr = file.attributes.find((a) => a.type === AT.INDEX_ALLOCATION && a.name === I30);
    if ((root.flags & INDEX_LARGE) !== 0 || root.entries.some((e) => e.child !== undefined)) {
      if (!allocAttr || allocAttr.resident) throw this.corrupt('index has child nodes but no non-resident $INDEX_ALLOCATION');
      this.alloc = new AttributeStream(volume, clusterSize, allocAttr, `${what}: $INDEX_ALLOCATION`);
    } else {
      this.alloc = null;
    }
    this.maxNodes = this.alloc ? Math.ceil(this.alloc.size / this.blockSize) : 0;
  }

  private corrupt(what: string): VdiskError {
    return new VdiskError('CORRUPT', `${this.what}: ${what}`);
  }

  private async node(vcn: number, visited: Set<number>): Promise<IndexEntry[]> {
    if (!this.alloc) throw this.corrupt(`child node at VCN ${vcn} without an index allocation`);
    if (visited.has(vcn)) throw this.corrupt(`index node at VCN ${vcn} is reached twice (a loop in the B-tree)`);
    if (visited.size >= this.maxNodes) throw this.corrupt(`index has more nodes than its ${this.maxNodes} blocks`);
    visited.add(vcn);
    const offset = vcn * this.vcnSize;
    if (offset + this.blockSize > this.alloc.size) throw this.corrupt(`index node at VCN ${vcn} lies past the index allocation's ${this.alloc.size} bytes`);
    const raw = Buffer.alloc(this.blockSize);
    await this.alloc.read(raw, offset);
    const entries = parseIndexBlock(raw, vcn);
    if (typeof entries === 'string') throw this.corrupt(`index block at VCN ${vcn}: ${entries}`);
    return entries;
  }

  /** Every key in collation order (an in-order walk), DOS-only names left out. */
  async entries(): Promise<DirEntryKey[]> {
    const out: DirEntryKey[] = [];
    const visited = new Set<number>();
    // A frame is a node's entries and the next one to look at; a child is walked before its entry.
    const stack: { entries: IndexEntry[]; i: number; descended: boolean }[] = [{ entries: this.root, i: 0, descended: false }];
    while (stack.length > 0) {
      const f = stack[stack.length - 1];
      if (f.i >= f.entries.length) {
        stack.pop();
        continue;
      }
      const e = f.entries[f.i];
      if (e.child !== undefined && !f.descended) {
        f.descended = true;
        stack.push({ entries: await this.node(e.child, visited), i: 0, descended: false });
        continue;
      }
      if (e.key && e.key.namespace !== NS_DOS) out.push({ record: e.record, key: e.key });
      f.i++;
      f.descended = false;
    }
    return out;
  }

  /**
   * The keys that collate equal to `name` ignoring case: visits only the nodes whose key range can
   * hold them (several when equal keys straddle nodes: names differing in case, a DOS name).
   */
  async find(name: Uint16Array, upcase: UpCase): Promise<DirEntryKey[]> {
    const out: DirEntryKey[] = [];
    const visited = new Set<number>();
    const pending: IndexEntry[][] = [this.root];
    while (pending.length > 0) {
      const entries = pending.pop() as IndexEntry[];
      for (let i = 0; i < entries.length; i++) {
        const e = entries[i];
        const prev = i > 0 ? entries[i - 1].key : undefined;
        const cmpCur = e.key ? upcase.compare(name, e.key.units) : -1;
        const cmpPrev = prev ? upcase.compare(name, prev.units) : 1;
        if (e.child !== undefined && cmpPrev >= 0 && cmpCur <= 0) pending.push(await this.node(e.child, visited));
        if (e.key && cmpCur === 0) out.push({ record: e.record, key: e.key });
        if (cmpCur < 0) break;
      }
    }
    return out;
  }
}
