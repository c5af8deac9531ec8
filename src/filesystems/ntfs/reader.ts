import { VdiskError } from '../../errors.js';
import { Lru } from '../../io/lru.js';
import { modeOf, type ByteRange, type FileType, type FsContext, type FsDirEntry, type FsFile, type FsReader, type FsStats } from '../filesystem.js';
import type { VolumeReader } from '../types.js';
import { parseBootSector, type BootSector } from './boot-sector.js';
import { DirectoryIndex } from './directory.js';
import { FA, NS_DOS, parseFileName } from './file-name.js';
import { Mft, type NtfsFile } from './mft.js';
import { AT, ATTR_COMPRESSED, ATTR_ENCRYPTED, RECORD_DIRECTORY, type Attribute } from './record.js';
import { parseInterix, parseReparsePoint, TAG_DEDUP, TAG_MOUNT_POINT, TAG_SYMLINK, TAG_WOF, type InterixType } from './reparse.js';
import { parseStandardInformation, type StandardInformation } from './standard-information.js';
import { AttributeStream } from './stream.js';
import { UpCase, unitsOf } from './upcase.js';

/** System files (NTFS Documentation, "Files"): records 0-15 are metadata, hidden from listings as ntfs-3g and ntfs3 hide them. */
const MFT_VOLUME = 3;
const MFT_ROOT = 5;
const MFT_BITMAP = 6;
const MFT_UPCASE = 10;
const FIRST_USER = 16;

/** Interix files are small: a link's target at most PATH_MAX UTF-16 units. */
const MAX_INTERIX = 8 + 2 * 4096;
const INFO_CACHE = 4096;

interface Info {
  file: NtfsFile;
  type: FileType;
  si: StandardInformation | null;
  data?: Attribute;
  target?: string;
  interix?: InterixType;
  reparseTag?: number;
  name: string;
}

const FLAG_NAMES: [number, string][] = [
  [FA.READONLY, 'readonly'],
  [FA.HIDDEN, 'hidden'],
  [FA.SYSTEM, 'system'],
  [FA.ARCHIVE, 'archive'],
  [FA.TEMPORARY, 'temporary'],
  [FA.SPARSE, 'sparse'],
  [FA.REPARSE_POINT, 'reparse-point'],
  [FA.COMPRESSED, 'compressed'],
  [FA.OFFLINE, 'offline'],
  [FA.NOT_CONTENT_INDEXED, 'not-content-indexed'],
  [FA.ENCRYPTED, 'encrypted'],
];

export class NtfsReader implements FsReader<number> {
  readonly type = 'ntfs';
  readonly label?: string;
  readonly uuid: string;
  readonly blockSize: number;
  readonly warnings: string[] = [];
  readonly caseInsensitive = true;
  private readonly volume: VolumeReader;
  private readonly boot: BootSector;
  private readonly name: string;
  private readonly mft: Mft;
  private upcase!: UpCase;
  /** Parsed files by record (an Lru: see Mft's file cache). */
  private readonly infos = new Lru<number, Promise<Info>>(INFO_CACHE);

  private constructor(volume: VolumeReader, boot: BootSector, mft: Mft, name: string, label: string | undefined) {
    this.volume = volume;
    this.boot = boot;
    this.mft = mft;
    this.name = name;
    this.label = label;
    this.uuid = boot.serial;
    this.blockSize = boot.clusterSize;
  }

  static async open(volume: VolumeReader, ctx: FsContext): Promise<NtfsReader> {
    const boot = parseBootSector(await volume.read(0, 512));
    if (typeof boot === 'string') throw new VdiskError('CORRUPT', `${ctx.name}: NTFS boot sector: ${boot}`);
    const mft = await Mft.open(volume, boot, ctx.name);
    const vol = await mft.file(MFT_VOLUME);
    const nameAttr = vol.attributes.find((a) => a.type === AT.VOLUME_NAME && a.resident);
    const label = nameAttr && nameAttr.value!.length > 0 ? nameAttr.value!.toString('utf16le') : undefined;
    const r = new NtfsReader(volume, boot, mft, ctx.name, label);
    // $VOLUME_INFORMATION (NTFS Documentation, "$VOLUME_INFORMATION"): flag 0x0001 marks a volume Windows
    // or ntfs-3g did not unmount cleanly; its metadata may be mid-change (ntfs-3g then refuses to mount it).
    const volInfo = vol.attributes.find((a) => a.type === AT.VOLUME_INFORMATION && a.resident);
    if (volInfo?.value && volInfo.value.length >= 12 && (volInfo.value.readUInt16LE(10) & 0x0001) !== 0) {
      r.warnings.push(`${ctx.name}: NTFS volume is marked dirty (not cleanly unmounted); recent changes may be missing or inconsistent`);
    }
    if (boot.totalSectors * boot.bytesPerSector > volume.size) {
      r.warnings.push(`${ctx.name}: NTFS volume of ${boot.totalSectors * boot.bytesPerSector} bytes is larger than its ${volume.size}-byte partition; the rest reads as zeros`);
    }
    r.upcase = await r.loadUpCase();
    return r;
  }

  private async loadUpCase(): Promise<UpCase> {
    try {
      const f = await this.mft.file(MFT_UPCASE);
      const data = f.attributes.find((a) => a.type === AT.DATA && a.name === '');
      if (!data || data.dataSize !== 131072) throw new VdiskError('CORRUPT', `${this.name}: $UpCase is not 65536 entries`);
      const s = new AttributeStream(this.volume, this.boot.clusterSize, data, `${this.name}: $UpCase`);
      const b = Buffer.alloc(131072);
      await s.read(b, 0);
      return UpCase.fromBytes(b);
    } catch (err) {
      if (!(err instanceof VdiskError)) throw err;
      this.warnings.push(`${err.message}; names are matched by Unicode's upper case instead`);
      const b = Buffer.alloc(131072);
      for (let i = 0; i < 65536; i++) {
        const u = String.fromCharCode(i).toUpperCase();
        b.writeUInt16LE(u.length === 1 ? u.charCodeAt(0) : i, i * 2);
      }
      return UpCase.fromBytes(b);
    }
  }

  /** The file in messages: its name (control characters escaped, so a message stays one line) and record. */
  private what(info: { name: string; file: NtfsFile }): string {
    const name = info.name.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
    return `${this.name}: ${name ? `${name} (MFT record ${info.file.number})` : `MFT record ${info.file.number}`}`;
  }

  private info(n: number): Promise<Info> {
    let p = this.infos.get(n);
    if (p) return p;
    p = this.loadInfo(n);
    p.catch(() => this.infos.delete(n));
    this.infos.set(n, p);
    return p;
  }

  private async loadInfo(n: number): Promise<Info> {
    const file = await this.mft.file(n);
    const siAttr = file.attributes.find((a) => a.type === AT.STANDARD_INFORMATION && a.resident);
    const si = siAttr ? parseStandardInformation(siAttr.value as Buffer) : null;
    let name = '';
    for (const a of file.attributes) {
      if (a.type !== AT.FILE_NAME || !a.resident) continue;
      const fn = parseFileName(a.value as Buffer, 0, a.value!.length);
      if (typeof fn !== 'string' && fn.namespace !== NS_DOS) {
        name = fn.name;
        break;
      }
    }
    const data = file.attributes.find((a) => a.type === AT.DATA && a.name === '');
    const info: Info = { file, type: 'file', si, data, name };
    const rp = file.attributes.find((a) => a.type === AT.REPARSE_POINT && a.name === '');
    if (rp) {
      const s = new AttributeStream(this.volume, this.boot.clusterSize, rp, `${this.what(info)}: $REPARSE_POINT`);
      if (s.size > 16384) throw new VdiskError('CORRUPT', `${this.what(info)}: $REPARSE_POINT of ${s.size} bytes exceeds 16 KiB`);
      const b = Buffer.alloc(s.size);
      await s.read(b, 0);
      const parsed = parseReparsePoint(b);
      if (typeof parsed === 'string') throw new VdiskError('CORRUPT', `${this.what(info)}: $REPARSE_POINT: ${parsed}`);
      info.reparseTag = parsed.tag;
      if (parsed.target !== undefined) {
        info.type = 'symlink';
        info.target = parsed.target;
        return info;
      }
    }
    if ((file.record.flags & RECORD_DIRECTORY) !== 0 && file.attributes.some((a) => a.type === AT.INDEX_ROOT && a.name === '$I30')) {
      info.type = 'directory';
      return info;
    }
    // Interix special files, as ntfs-3g reads them: system files of user records, not encrypted or compressed.
    if (n >= FIRST_USER && si && (si.attributes & FA.SYSTEM) !== 0 && data && (data.flags & (ATTR_ENCRYPTED | ATTR_COMPRESSED)) === 0 && data.dataSize <= MAX_INTERIX) {
      const s = new AttributeStream(this.volume, this.boot.clusterSize, data, `${this.what(info)}: $DATA`);
      const b = Buffer.alloc(s.size);
      await s.read(b, 0);
      const x = parseInterix(b, s.size);
      if (x) {
        info.interix = x;
        info.type = x.type;
        if (x.type === 'symlink') info.target = x.target;
      }
    }
    return info;
  }

  async root(): Promise<number> {
    return MFT_ROOT;
  }

  async stat(n: number): Promise<FsStats> {
    const info = await this.info(n);
    const { file, si, type } = info;
    const attrs = si?.attributes ?? 0;
    // Modes as the Linux ntfs3 driver shows them with its defaults (umask 022): 0755 for files and
    // directories, 0777 for links, the read-only attribute dropping the write bits (fs/ntfs3/inode.c).
    let perms = type === 'symlink' ? 0o777 : 0o755;
    if ((attrs & FA.READONLY) !== 0) perms &= ~0o222;
    let links = 0;
    for (const a of file.attributes) {
      if (a.type !== AT.FILE_NAME || !a.resident) continue;
      const fn = parseFileName(a.value as Buffer, 0, a.value!.length);
      if (typeof fn !== 'string' && fn.namespace !== NS_DOS) links++;
    }
    let size = 0;
    let allocated = 0;
    const clusters = (a: Attribute) => (a.resident ? 0 : a.runs.reduce((s, r) => s + (r.lcn === null ? 0 : r.length), 0) * this.boot.clusterSize);
    if (type === 'directory') {
      const alloc = file.attributes.find((a) => a.type === AT.INDEX_ALLOCATION && a.name === '$I30');
      if (alloc) {
        size = alloc.dataSize;
        allocated = clusters(alloc);
      }
    } else if (type === 'symlink') {
      size = Buffer.byteLength(info.target as string);
    } else if (info.data) {
      size = info.data.dataSize;
      allocated = clusters(info.data);
    }
    const flags = FLAG_NAMES.filter(([bit]) => (attrs & bit) !== 0).map(([, s]) => s);
    if (info.reparseTag !== undefined && info.reparseTag !== TAG_SYMLINK && info.reparseTag !== TAG_MOUNT_POINT) {
      flags.push(info.reparseTag === TAG_WOF ? 'wof-compressed' : info.reparseTag === TAG_DEDUP ? 'deduplicated' : `reparse-tag-0x${info.reparseTag.toString(16)}`);
    }
    if (info.reparseTag === TAG_MOUNT_POINT) flags.push('junction');
    const streams = file.attributes
      .filter((a) => a.type === AT.DATA && a.name !== '')
      .map((a) => ({ name: a.name, size: a.dataSize }));
    const st: FsStats = {
      type,
      mode: modeOf(type, perms),
      uid: 0,
      gid: 0,
      nlink: Math.max(1, links),
      ino: n,
      size,
      allocated,
      ...(si ? { atime: si.accessed, mtime: si.modified, ctime: si.changed, birthtime: si.created } : {}),
      flags,
    };
    if (streams.length) st.streams = streams;
    if (info.interix && (info.interix.type === 'char' || info.interix.type === 'block')) st.rdev = { major: info.interix.major, minor: info.interix.minor };
    return st;
  }

  private async index(n: number): Promise<DirectoryIndex> {
    const info = await this.info(n);
    if (info.type !== 'directory') throw new VdiskError('USAGE', `${this.what(info)}: not a directory`);
    return new DirectoryIndex(this.volume, this.boot.clusterSize, info.file, this.what(info));
  }

  async readdir(dir: number): Promise<FsDirEntry<number>[]> {
    const keys = await (await this.index(dir)).entries();
    const out: FsDirEntry<number>[] = [];
    for (const { record, key } of keys) {
      if (record < FIRST_USER) continue;
      let type: FileType;
      // The index keeps a copy of the file's attributes: enough unless it may be a link or special file.
      if ((key.flags & (FA.REPARSE_POINT | FA.SYSTEM)) !== 0) type = (await this.info(record)).type;
      else type = (key.flags & FA.DIRECTORY) !== 0 ? 'directory' : 'file';
      out.push({ name: key.name, type, node: record });
    }
    return out;
  }

  /** Case-insensitive through $UpCase as Windows looks names up; an exact match wins, DOS names last. */
  async lookup(dir: number, name: string): Promise<number | null> {
    const found = await (await this.index(dir)).find(unitsOf(name), this.upcase);
    const rank = (k: (typeof found)[number]) => (k.key.name === name ? 0 : k.key.namespace !== NS_DOS ? 1 : 2);
    found.sort((a, b) => rank(a) - rank(b));
    return found.length ? found[0].record : null;
  }

  async readlink(n: number): Promise<string> {
    const info = await this.info(n);
    if (info.type !== 'symlink') throw new VdiskError('USAGE', `${this.what(info)}: not a symbolic link`);
    return info.target as string;
  }

  async open(n: number, stream?: string): Promise<FsFile> {
    const info = await this.info(n);
    const what = this.what(info);
    const attr = stream ? info.file.attributes.find((a) => a.type === AT.DATA && a.name === stream) : info.data;
    if (!attr) {
      if (stream) throw new VdiskError('NOT_FOUND', `${what}: no data stream named ${JSON.stringify(stream)}`);
      return new AttributeStream(this.volume, this.boot.clusterSize, { ...emptyData, record: n }, what);
    }
    const attrs = info.si?.attributes ?? 0;
    if ((attr.flags & ATTR_ENCRYPTED) !== 0 || (attrs & FA.ENCRYPTED) !== 0) {
      throw new VdiskError('UNSUPPORTED', `${what}: EFS-encrypted; its contents cannot be read without the user's key`);
    }
    if (!stream && info.reparseTag === TAG_WOF) throw new VdiskError('UNSUPPORTED', `${what}: WOF-compressed (Windows compact); reading it is not supported`);
    if (!stream && info.reparseTag === TAG_DEDUP) throw new VdiskError('UNSUPPORTED', `${what}: deduplicated (its data lives in the volume's chunk store); reading it is not supported`);
    if ((attr.flags & ATTR_COMPRESSED) !== 0 && !attr.resident && attr.compressionUnit === 0) {
      throw new VdiskError('CORRUPT', `${what}: compressed stream without a compression unit`);
    }
    return new AttributeStream(this.volume, this.boot.clusterSize, attr, stream ? `${what}: stream ${JSON.stringify(stream)}` : what);
  }

  /** Runs of clear bits in $Bitmap (one bit per cluster, set when in use), read in 1 MiB pieces. */
  async *freeExtents(): AsyncIterable<ByteRange> {
    const f = await this.mft.file(MFT_BITMAP);
    const data = f.attributes.find((a) => a.type === AT.DATA && a.name === '');
    if (!data) throw new VdiskError('CORRUPT', `${this.name}: $Bitmap has no data`);
    // Clusters past the end of the partition (a boot sector claiming more than is there) are not ours to report.
    const bits = Math.min(this.boot.totalClusters, Math.floor(this.volume.size / this.boot.clusterSize));
    if (data.dataSize * 8 < bits) throw new VdiskError('CORRUPT', `${this.name}: $Bitmap of ${data.dataSize} bytes is too short for ${bits} clusters`);
    const s = new AttributeStream(this.volume, this.boot.clusterSize, data, `${this.name}: $Bitmap`);
    const cluster = this.boot.clusterSize;
    const piece = Buffer.alloc(1024 * 1024);
    let start = -1;
    for (let byte = 0; byte * 8 < bits; byte += piece.length) {
      await s.read(piece, byte);
      const limit = Math.min(piece.length, Math.ceil(bits / 8) - byte);
      for (let i = 0; i < limit; i++) {
        const v = piece[i];
        if (v === 0xff && start < 0) continue;
        if (v === 0 && start >= 0) continue;
        for (let bit = 0; bit < 8; bit++) {
          const c = (byte + i) * 8 + bit;
          if (c >= bits) break;
          const used = (v >> bit) & 1;
          if (!used && start < 0) start = c;
          else if (used && start >= 0) {
            yield { offset: start * cluster, length: (c - start) * cluster };
            start = -1;
          }
        }
      }
    }
    if (start >= 0) yield { offset: start * cluster, length: (bits - start) * cluster };
  }
}

const emptyData: Attribute = {
  type: AT.DATA,
  name: '',
  flags: 0,
  id: 0,
  record: 0,
  resident: true,
  value: Buffer.alloc(0),
  startVcn: 0,
  lastVcn: -1,
  runs: [],
  compressionUnit: 0,
  allocatedSize: 0,
  dataSize: 0,
  initializedSize: 0,
};
