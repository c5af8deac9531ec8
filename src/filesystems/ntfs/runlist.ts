/**
 * Runlists ("mapping pairs") of non-resident attributes: a header byte whose low nibble is the size of
 * the run length and high nibble the size of the LCN delta, then those little-endian fields; a zero
 * header ends the list. The delta is signed and relative to the previous run's LCN; a run without a
 * delta is sparse (NTFS Documentation, "Data Runs").
 */

export interface Run {
  /** First virtual cluster of the run within the attribute. */
  vcn: number;
  /** First logical cluster on the volume, or null for a sparse run (reads as zeros). */
  lcn: number | null;
  length: number;
}

/** Little-endian integer of `n` bytes at `at`, signed or not; null when it leaves the safe range. */
function readVarInt(b: Buffer, at: number, n: number, signed: boolean): number | null {
  let v = 0n;
  for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[at + i]);
  if (signed && n > 0 && (b[at + n - 1] & 0x80) !== 0) v -= 1n << BigInt(8 * n);
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return Number(v);
}

/**
 * Decodes the mapping pairs in b[start, end) for an extent starting at `startVcn`. Every run must have
 * a positive length, stay inside the volume's `totalClusters` and come in VCN order without gaps;
 * the run count is bounded by `maxRuns`. Returns the runs, or what is wrong.
 */
export function decodeRunlist(b: Buffer, start: number, end: number, startVcn: number, totalClusters: number, maxRuns: number): Run[] | string {
  const runs: Run[] = [];
  let at = start;
  let vcn = startVcn;
  let lcn = 0;
  while (at < end) {
    const header = b[at];
    if (header === 0) return runs;
    const lenSize = header & 0x0f;
    const offSize = header >> 4;
    if (lenSize === 0 || lenSize > 8 || offSize > 8) return `run ${runs.length}: header byte 0x${header.toString(16)} is invalid`;
    if (at + 1 + lenSize + offSize > end) return `run ${runs.length} runs past the attribute`;
    const length = readVarInt(b, at + 1, lenSize, true);
    if (length === null || length <= 0) return `run ${runs.length}: length ${length ?? 'out of range'} is not positive`;
    if (runs.length >= maxRuns) return `more than ${maxRuns} runs`;
    let runLcn: number | null = null;
    if (offSize > 0) {
      const delta = readVarInt(b, at + 1 + lenSize, offSize, true);
      if (delta === null) return `run ${runs.length}: LCN delta out of range`;
      lcn += delta;
      if (lcn < 0 || lcn + length > totalClusters) return `run ${runs.length}: clusters ${lcn}+${length} lie outside the volume's ${totalClusters}`;
      runLcn = lcn;
    }
    runs.push({ vcn, lcn: runLcn, length });
    vcn += length;
    if (!Number.isSafeInteger(vcn)) return `run ${runs.length}: VCN out of range`;
    at += 1 + lenSize + offSize;
  }
  return `runlist has no terminator`;
}

/** Index of the run holding `vcn` (runs sorted and contiguous), or -1. */
export function findRun(runs: Run[], vcn: number): number {
  let lo = 0;
  let hi = runs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = runs[mid];
    if (vcn < r.vcn) hi = mid - 1;
    else if (vcn >= r.vcn + r.length) lo = mid + 1;
    else return mid;
  }
  return -1;
}
