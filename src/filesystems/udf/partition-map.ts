import { parseRegid } from './addresses.js';

/**
 * Partition maps in the logical volume descriptor (ECMA-167 3/10.7; UDF 2.60 2.2.8-2.2.10): type 1
 * names a partition directly; type 2 names a virtual (VAT), sparable or metadata partition by its
 * identifier. The index of a map is the partition reference number of every lb_addr.
 */
export type PartitionMap =
  | { kind: 'physical'; partition: number }
  | { kind: 'virtual'; partition: number }
  | { kind: 'sparable'; partition: number; packetLength: number; tableSize: number; tables: number[] }
  | { kind: 'metadata'; partition: number; file: number; mirror: number; bitmap: number; duplicated: boolean }
  | { kind: 'unknown'; partition: number; identifier: string };

const MAX_SPARING_TABLES = 4;

/** The maps in `b` (the map table), or a string naming what is wrong. */
export function parsePartitionMaps(b: Buffer, count: number): PartitionMap[] | string {
  const maps: PartitionMap[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at + 2 > b.length) return `partition map ${i} runs past the map table`;
    const type = b[at];
    const len = b[at + 1];
    if (len < 6 || at + len > b.length) return `partition map ${i} has length ${len}`;
    if (type === 1) {
      maps.push({ kind: 'physical', partition: b.readUInt16LE(at + 4) });
    } else if (type === 2) {
      if (len < 40) return `partition map ${i} (type 2) has length ${len}`;
      const id = parseRegid(b, at + 4).id;
      const partition = b.readUInt16LE(at + 38);
      if (id === '*UDF Virtual Partition') {
        maps.push({ kind: 'virtual', partition });
      } else if (id === '*UDF Sparable Partition') {
        const n = b[at + 42];
        if (n < 1 || n > MAX_SPARING_TABLES || 48 + 4 * n > len) return `partition map ${i} lists ${n} sparing tables`;
        const tables = Array.from({ length: n }, (_, k) => b.readUInt32LE(at + 48 + 4 * k));
        maps.push({ kind: 'sparable', partition, packetLength: b.readUInt16LE(at + 40), tableSize: b.readUInt32LE(at + 44), tables });
      } else if (id === '*UDF Metadata Partition') {
        if (len < 59) return `partition map ${i} (metadata) has length ${len}`;
        maps.push({
          kind: 'metadata',
          partition,
          file: b.readUInt32LE(at + 40),
          mirror: b.readUInt32LE(at + 44),
          bitmap: b.readUInt32LE(at + 48),
          duplicated: (b[at + 58] & 1) !== 0,
        });
      } else {
        maps.push({ kind: 'unknown', partition, identifier: id });
      }
    } else {
      return `partition map ${i} has type ${type}`;
    }
    at += len;
  }
  return maps;
}
