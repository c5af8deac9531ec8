import { corrupt } from '../../errors.js';
import { readExact, type ByteSource } from '../../io/file.js';
import { u64, roundUp } from './constants.js';

/** One internal snapshot table entry (qcow2.txt "Snapshot table"). */
export interface Qcow2Snapshot {
  l1TableOffset: number;
  l1Size: number;
  id: string;
  name: string;
  dateSec: number;
  dateNsec: number;
  vmClockNsec: number;
  vmStateSize: number;
  icount: number | null;
  /** The snapshot's entry in the table, for check. */
  tableOffset: number;
}

/** Reads the snapshot table: `count` entries from `offset`, each bounded by the file and by its own fields. */
export async function readSnapshots(src: ByteSource, offset: number, count: number): Promise<{ snapshots: Qcow2Snapshot[]; end: number }> {
  const out: Qcow2Snapshot[] = [];
  let at = offset;
  for (let i = 0; i < count; i++) {
    const fixed = await readExact(src, at, 40, `qcow2 snapshot table entry ${i}`);
    const idLen = fixed.readUInt16BE(12);
    const nameLen = fixed.readUInt16BE(14);
    const extra = fixed.readUInt32BE(36);
    if (extra > 1024) throw corrupt(src.path, `qcow2 snapshot ${i}: extra data of ${extra} bytes (at most 1024)`);
    const rest = await readExact(src, at + 40, extra + idLen + nameLen, `qcow2 snapshot table entry ${i}`);
    const l1 = u64(fixed, 0);
    const vmClock = u64(fixed, 24);
    if (l1 === null || vmClock === null) throw corrupt(src.path, `qcow2 snapshot ${i}: a field beyond 2^53`);
    let vmState = fixed.readUInt32BE(32);
    let icount: number | null = null;
    if (extra >= 8) vmState = u64(rest, 0) ?? vmState;
    if (extra >= 24) {
      const hi = rest.readUInt32BE(16);
      icount = hi === 0xffffffff ? null : u64(rest, 16);
    }
    out.push({
      l1TableOffset: l1,
      l1Size: fixed.readUInt32BE(8),
      id: rest.toString('utf8', extra, extra + idLen),
      name: rest.toString('utf8', extra + idLen, extra + idLen + nameLen),
      dateSec: fixed.readUInt32BE(16),
      dateNsec: fixed.readUInt32BE(20),
      vmClockNsec: vmClock,
      vmStateSize: vmState,
      icount,
      tableOffset: at,
    });
    at += roundUp(40 + extra + idLen + nameLen, 8);
  }
  return { snapshots: out, end: at };
}

/** A snapshot as `qemu-img info --output json` lists it. */
export function snapshotInfo(s: Qcow2Snapshot): Record<string, unknown> {
  return {
    ...(s.icount !== null ? { icount: s.icount } : {}),
    'vm-clock-nsec': s.vmClockNsec % 1e9,
    name: s.name,
    'date-sec': s.dateSec,
    'date-nsec': s.dateNsec,
    'vm-clock-sec': Math.floor(s.vmClockNsec / 1e9),
    id: s.id,
    'vm-state-size': s.vmStateSize,
  };
}
