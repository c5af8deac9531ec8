import { corrupt, unsupported } from '../../errors.js';
import { MAX_EXTENTS } from './constants.js';

export type ExtentAccess = 'RW' | 'RDONLY' | 'NOACCESS';
export type ExtentType = 'SPARSE' | 'FLAT' | 'ZERO' | 'VMFS' | 'VMFSSPARSE' | 'SESPARSE' | 'VMFSRDM' | 'VMFSRAW';

export interface ExtentLine {
  access: ExtentAccess;
  sectors: number;
  type: ExtentType;
  /** As written in the descriptor: relative to the descriptor's directory unless absolute. */
  file: string;
  /** Where the extent starts in its file, in sectors (FLAT and VMFS only). */
  offset: number;
}

/** The text descriptor (a file of its own, or embedded in a sparse extent). */
export interface Descriptor {
  version: number;
  cid: number;
  parentCid: number;
  createType: string;
  parentFileNameHint: string | null;
  extents: ExtentLine[];
  /** ddb.* entries, quotes removed. */
  ddb: Record<string, string>;
}

const EXTENT = /^(RW|RDONLY|NOACCESS)\s+(\d+)\s+([A-Z]+)(?:\s+"([^"]*)"(?:\s+(\d+))?)?\s*$/;
const PAIR = /^([A-Za-z0-9_.]+)\s*=\s*(.*?)\s*$/;
const TYPES = new Set(['SPARSE', 'FLAT', 'ZERO', 'VMFS', 'VMFSSPARSE', 'SESPARSE', 'VMFSRDM', 'VMFSRAW']);

const unquote = (v: string) => (v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v);

function hex32(file: string, key: string, v: string): number {
  const t = unquote(v);
  if (!/^[0-9a-fA-F]{1,8}$/.test(t)) throw corrupt(file, `descriptor: ${key}=${v.slice(0, 40)} is not a 32-bit hexadecimal number`);
  return parseInt(t, 16);
}

/** Parses descriptor text; the text ends at its first NUL (an embedded descriptor is padded with them). */
export function parseDescriptor(file: string, text: string): Descriptor {
  const nul = text.indexOf('\0');
  const body = nul >= 0 ? text.slice(0, nul) : text;
  const d: Descriptor = { version: 1, cid: 0, parentCid: 0xffffffff, createType: '', parentFileNameHint: null, extents: [], ddb: {} };
  let lineNo = 0;
  for (const raw of body.split(/\r?\n/)) {
    lineNo++;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const ext = EXTENT.exec(line);
    if (ext) {
      if (d.extents.length >= MAX_EXTENTS) throw unsupported(file, `descriptor lists more than ${MAX_EXTENTS} extents`);
      const type = ext[3];
      if (!TYPES.has(type)) throw corrupt(file, `descriptor line ${lineNo}: unknown extent type ${type.slice(0, 20)}`);
      const sectors = Number(ext[2]);
      const offset = ext[5] === undefined ? 0 : Number(ext[5]);
      if (!Number.isSafeInteger(sectors * 512) || !Number.isSafeInteger(offset * 512)) {
        throw corrupt(file, `descriptor line ${lineNo}: extent size or offset beyond any disk`);
      }
      if (type !== 'ZERO' && ext[4] === undefined) throw corrupt(file, `descriptor line ${lineNo}: ${type} extent without a file name`);
      if (ext[4] === '') throw corrupt(file, `descriptor line ${lineNo}: empty extent file name`);
      d.extents.push({ access: ext[1] as ExtentAccess, sectors, type: type as ExtentType, file: ext[4] ?? '', offset });
      continue;
    }
    const kv = PAIR.exec(line);
    if (!kv) {
      if (/^(RW|RDONLY|NOACCESS)\s/.test(line)) throw corrupt(file, `descriptor line ${lineNo}: malformed extent line`);
      continue; // VMware ignores lines it does not know; so do QEMU and vdisk
    }
    const [, key, value] = kv;
    switch (key) {
      case 'version':
        d.version = Number(unquote(value));
        break;
      case 'CID':
        d.cid = hex32(file, key, value);
        break;
      case 'parentCID':
        d.parentCid = hex32(file, key, value);
        break;
      case 'createType':
        d.createType = unquote(value);
        break;
      case 'parentFileNameHint':
        d.parentFileNameHint = unquote(value);
        if (d.parentFileNameHint === '') throw corrupt(file, 'descriptor: empty parentFileNameHint');
        break;
      default:
        if (key.startsWith('ddb.')) d.ddb[key.slice(4)] = unquote(value);
    }
  }
  return d;
}

export interface NewDescriptor {
  cid: number;
  createType: string;
  extents: ExtentLine[];
  capacitySectors: number;
  adapterType: string;
  hwVersion: number;
  parentCid?: number;
  parentFileNameHint?: string;
}

/** BIOS geometry as VMware tools expect it (16 heads of 63 sectors; 255 for SCSI adapters, as QEMU writes). */
function geometry(sectors: number, adapter: string): { cylinders: number; heads: number; sectors: number } {
  const heads = adapter === 'ide' ? 16 : 255;
  return { cylinders: Math.min(16383, Math.max(1, Math.floor(sectors / (heads * 63)))), heads, sectors: 63 };
}

export function serializeDescriptor(n: NewDescriptor): string {
  const g = geometry(n.capacitySectors, n.adapterType);
  const hex = (v: number) => (v >>> 0).toString(16).padStart(8, '0');
  const lines = [
    '# Disk DescriptorFile',
    'version=1',
    `CID=${hex(n.cid)}`,
    `parentCID=${hex(n.parentCid ?? 0xffffffff)}`,
    `createType="${n.createType}"`,
    ...(n.parentFileNameHint ? [`parentFileNameHint="${n.parentFileNameHint}"`] : []),
    '',
    '# Extent description',
    ...n.extents.map((e) => `${e.access} ${e.sectors} ${e.type}${e.type === 'ZERO' ? '' : ` "${e.file}"`}${e.type === 'FLAT' || e.type === 'VMFS' ? ` ${e.offset}` : ''}`),
    '',
    '# The Disk Data Base',
    '#DDB',
    '',
    `ddb.virtualHWVersion = "${n.hwVersion}"`,
    `ddb.geometry.cylinders = "${g.cylinders}"`,
    `ddb.geometry.heads = "${g.heads}"`,
    `ddb.geometry.sectors = "${g.sectors}"`,
    `ddb.adapterType = "${n.adapterType}"`,
    '',
  ];
  return lines.join('\n');
}
