import { corrupt } from '../../errors.js';
import { EXT_BACKING_FORMAT, EXT_DATA_FILE, EXT_END, EXT_FEATURE_TABLE, roundUp } from './constants.js';

/** Header extensions (qcow2.txt "Header extensions"): type, length, data padded to 8 bytes. */
export interface Qcow2Extensions {
  backingFormat?: string;
  dataFile?: string;
  /** Feature name table: "incompatible:3" -> "compression type". */
  featureNames: Map<string, string>;
  /** Types vdisk does not interpret (bitmaps, crypto header, unknown ones). */
  others: number[];
}

const FEATURE_KINDS = ['incompatible', 'compatible', 'autoclear'];
const MAX_EXTENSIONS = 1024;

/**
 * Reads the extensions in `cluster0` from `start` up to `end` (the backing file name or the cluster's
 * end), each length checked against what is left.
 */
export function parseExtensions(path: string, cluster0: Buffer, start: number, end: number): Qcow2Extensions {
  const out: Qcow2Extensions = { featureNames: new Map(), others: [] };
  let at = start;
  for (let n = 0; n < MAX_EXTENSIONS && at + 8 <= end; n++) {
    const type = cluster0.readUInt32BE(at);
    const len = cluster0.readUInt32BE(at + 4);
    if (type === EXT_END) return out;
    if (len > end - at - 8) throw corrupt(path, `qcow2 header extension 0x${type.toString(16)} at ${at}: length ${len} runs past the header cluster`);
    const data = cluster0.subarray(at + 8, at + 8 + len);
    switch (type) {
      case EXT_BACKING_FORMAT:
        out.backingFormat = data.toString('utf8');
        break;
      case EXT_DATA_FILE:
        out.dataFile = data.toString('utf8');
        break;
      case EXT_FEATURE_TABLE:
        for (let e = 0; e + 48 <= len; e += 48) {
          const kind = FEATURE_KINDS[data[e]];
          const name = data.toString('utf8', e + 2, e + 48).replace(/\0.*$/s, '');
          if (kind) out.featureNames.set(`${kind}:${data[e + 1]}`, name);
        }
        break;
      default:
        out.others.push(type);
    }
    at += 8 + roundUp(len, 8);
  }
  return out;
}

/** Extension bytes for a new image: backing format and data file name when given, then the end marker. */
export function serializeExtensions(e: { backingFormat?: string; dataFile?: string }): Buffer {
  const parts: Buffer[] = [];
  const add = (type: number, data: Buffer) => {
    const b = Buffer.alloc(8 + roundUp(data.length, 8));
    b.writeUInt32BE(type, 0);
    b.writeUInt32BE(data.length, 4);
    data.copy(b, 8);
    parts.push(b);
  };
  if (e.backingFormat) add(EXT_BACKING_FORMAT, Buffer.from(e.backingFormat, 'utf8'));
  if (e.dataFile) add(EXT_DATA_FILE, Buffer.from(e.dataFile, 'utf8'));
  parts.push(Buffer.alloc(8));
  return Buffer.concat(parts);
}
