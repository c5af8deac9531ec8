/**
 * xz as squashfs stores each block: one .xz stream (xz-file-format 1.0.4) holding one block of LZMA2
 * chunks. The container is read for what decoding needs (stream flags, the block header and its
 * filter chain); integrity checks are not verified (squashfs has none of its own either, and every
 * length and distance is bounded). Filters other than LZMA2 (the BCJ converters of -Xbcj) are refused.
 */

/** A valid stream that uses what this decoder does not do (a BCJ or delta filter). */
export class XzUnsupported extends Error {}

const MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const LZMA2 = 0x21;
const FILTERS: Record<number, string> = { 3: 'delta', 4: 'x86 BCJ', 5: 'PowerPC BCJ', 6: 'IA-64 BCJ', 7: 'ARM BCJ', 8: 'ARM-Thumb BCJ', 9: 'SPARC BCJ', 10: 'ARM64 BCJ', 11: 'RISC-V BCJ' };

function fail(what: string): never {
  throw new Error(`xz block: ${what}`);
}

/** Decodes the stream's first block into `out`; returns its length. */
export function xzDecodeBlock(src: Uint8Array, out: Uint8Array): number {
  if (src.length < 12 + 12) fail('shorter than its stream header and footer');
  for (let i = 0; i < 6; i++) if (src[i] !== MAGIC[i]) fail('no stream header magic');
  if (src[6] !== 0 || (src[7] & 0xf0) !== 0) fail('unknown stream flags');
  let ip = 12;
  const headerSize = (src[ip] + 1) * 4;
  // A block header size byte of 0 is the index: a stream without blocks holds nothing.
  if (src[ip] === 0) return 0;
  if (ip + headerSize > src.length) fail('block header runs past the data');
  const end = ip + headerSize - 4;
  const flags = src[ip + 1];
  if (flags & 0x3c) fail('reserved block flags set');
  let p = ip + 2;
  const varint = (): number => {
    let v = 0;
    for (let i = 0; i < 9; i++) {
      if (p >= end) fail('block header field runs past the header');
      const b = src[p++];
      v += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) return v;
    }
    return fail('block header number longer than 9 bytes');
  };
  if (flags & 0x40) varint();
  if (flags & 0x80) varint();
  const filters = (flags & 3) + 1;
  let dictProps = -1;
  for (let i = 0; i < filters; i++) {
    const id = varint();
    const size = varint();
    if (p + size > end) fail('filter properties run past the header');
    if (id === LZMA2) {
      if (i !== filters - 1 || size !== 1) fail('LZMA2 is not the last filter or has properties of other than 1 byte');
      dictProps = src[p];
    } else {
      throw new XzUnsupported(`xz filter ${FILTERS[id] ?? `0x${id.toString(16)}`}`);
    }
    p += size;
  }
  if (dictProps < 0 || dictProps > 40) fail('no LZMA2 filter, or a dictionary size past 4 GiB');
  return lzma2(src, end + 4, out);
}

// LZMA (the range-coded Lempel-Ziv-Markov chain) inside LZMA2's chunks, as in the LZMA SDK's spec.
const NUM_STATES = 12;
const POS_STATES_MAX = 16;
const MATCH_MIN = 2;

class LenDecoder {
  choice = new Uint16Array(2);
  low = new Uint16Array(POS_STATES_MAX << 3);
  mid = new Uint16Array(POS_STATES_MAX << 3);
  high = new Uint16Array(256);
  reset(): void {
    this.choice.fill(1024);
    this.low.fill(1024);
    this.mid.fill(1024);
    this.high.fill(1024);
  }
}

function lzma2(src: Uint8Array, start: number, out: Uint8Array): number {
  let ip = start;
  let op = 0;
  // Range decoder
  let range = 0;
  let code = 0;
  let chunkEnd = 0;
  const next = (): number => {
    if (ip >= chunkEnd) fail('LZMA chunk runs past its packed size');
    return src[ip++];
  };
  const normalize = () => {
    if (range < 0x1000000) {
      range = range * 256;
      code = code * 256 + next();
    }
  };
  const bit = (probs: Uint16Array, i: number): number => {
    const prob = probs[i];
    const bound = Math.floor(range / 2048) * prob;
    let b: number;
    if (code < bound) {
      range = bound;
      probs[i] = prob + ((2048 - prob) >> 5);
      b = 0;
    } else {
      range -= bound;
      code -= bound;
      probs[i] = prob - (prob >> 5);
      b = 1;
    }
    normalize();
    return b;
  };
  const tree = (probs: Uint16Array, base: number, bits: number): number => {
    let m = 1;
    for (let i = 0; i < bits; i++) m = (m << 1) + bit(probs, base + m);
    return m - (1 << bits);
  };
  const reverse = (probs: Uint16Array, base: number, bits: number): number => {
    let m = 1;
    let sym = 0;
    for (let i = 0; i < bits; i++) {
      const b = bit(probs, base + m);
      m = (m << 1) + b;
      sym |= b << i;
    }
    return sym;
  };
  const direct = (bits: number): number => {
    let v = 0;
    for (let i = 0; i < bits; i++) {
      range = Math.floor(range / 2);
      let b = 0;
      if (code >= range) {
        code -= range;
        b = 1;
      }
      v = v * 2 + b;
      normalize();
    }
    return v;
  };

  // Model
  let lc = 0;
  let lp = 0;
  let pb = 0;
  let havePropsSet = false;
  let literals = new Uint16Array(0x300);
  const isMatch = new Uint16Array(NUM_STATES << 4);
  const isRep = new Uint16Array(NUM_STATES);
  const isRepG0 = new Uint16Array(NUM_STATES);
  const isRepG1 = new Uint16Array(NUM_STATES);
  const isRepG2 = new Uint16Array(NUM_STATES);
  const isRep0Long = new Uint16Array(NUM_STATES << 4);
  const posSlot = new Uint16Array(4 << 6);
  const specPos = new Uint16Array(128);
  const align = new Uint16Array(16);
  const lenDec = new LenDecoder();
  const repLenDec = new LenDecoder();
  let state = 0;
  let rep0 = 0;
  let rep1 = 0;
  let rep2 = 0;
  let rep3 = 0;
  /** Where the dictionary starts: a dictionary reset forbids matches before it. */
  let dictStart = 0;
  let needDictReset = true;

  const resetState = () => {
    literals.fill(1024);
    for (const a of [isMatch, isRep, isRepG0, isRepG1, isRepG2, isRep0Long, posSlot, specPos, align]) a.fill(1024);
    lenDec.reset();
    repLenDec.reset();
    state = 0;
    rep0 = rep1 = rep2 = rep3 = 0;
  };

  const len = (d: LenDecoder, posState: number): number => {
    if (bit(d.choice, 0) === 0) return tree(d.low, posState << 3, 3);
    if (bit(d.choice, 1) === 0) return 8 + tree(d.mid, posState << 3, 3);
    return 16 + tree(d.high, 0, 8);
  };

  const copyMatch = (dist: number, n: number, limit: number) => {
    if (dist >= op - dictStart) fail(`match distance ${dist + 1} reaches before the dictionary`);
    if (op + n > limit) fail('match runs past the chunk');
    const from = op - dist - 1;
    for (let i = 0; i < n; i++) out[op + i] = out[from + i];
    op += n;
  };

  const decodeChunk = (limit: number) => {
    const pbMask = (1 << pb) - 1;
    const lpMask = (1 << lp) - 1;
    while (op < limit) {
      const posState = op & pbMask;
      if (bit(isMatch, (state << 4) + posState) === 0) {
        const prev = op > dictStart ? out[op - 1] : 0;
        const base = 0x300 * (((op & lpMask) << lc) + (prev >> (8 - lc)));
        let sym = 1;
        if (state >= 7) {
          if (rep0 >= op - dictStart) fail('matched literal reaches before the dictionary');
          let matchByte = out[op - rep0 - 1];
          while (sym < 0x100) {
            const mb = (matchByte >> 7) & 1;
            matchByte <<= 1;
            const b = bit(literals, base + ((1 + mb) << 8) + sym);
            sym = (sym << 1) | b;
            if (mb !== b) break;
          }
        }
        while (sym < 0x100) sym = (sym << 1) | bit(literals, base + sym);
        out[op++] = sym & 0xff;
        state = state < 4 ? 0 : state < 10 ? state - 3 : state - 6;
        continue;
      }
      let n: number;
      if (bit(isRep, state) === 1) {
        if (op === dictStart) fail('repeated match before any data');
        if (bit(isRepG0, state) === 0) {
          if (bit(isRep0Long, (state << 4) + posState) === 0) {
            state = state < 7 ? 9 : 11;
            copyMatch(rep0, 1, limit);
            continue;
          }
        } else {
          let dist: number;
          if (bit(isRepG1, state) === 0) dist = rep1;
          else {
            if (bit(isRepG2, state) === 0) dist = rep2;
            else {
              dist = rep3;
              rep3 = rep2;
            }
            rep2 = rep1;
          }
          rep1 = rep0;
          rep0 = dist;
        }
        n = len(repLenDec, posState) + MATCH_MIN;
        state = state < 7 ? 8 : 11;
      } else {
        rep3 = rep2;
        rep2 = rep1;
        rep1 = rep0;
        n = len(lenDec, posState) + MATCH_MIN;
        state = state < 7 ? 7 : 10;
        const lenState = Math.min(n - MATCH_MIN, 3);
        const slot = tree(posSlot, lenState << 6, 6);
        if (slot < 4) rep0 = slot;
        else {
          const bits = (slot >> 1) - 1;
          const base = (2 | (slot & 1)) * 2 ** bits;
          if (slot < 14) rep0 = base + reverse(specPos, base - slot, bits);
          else {
            rep0 = base + direct(bits - 4) * 16 + reverse(align, 0, 4);
            // All ones is LZMA's end marker, which LZMA2 chunks do not use.
            if (rep0 === 0xffffffff) fail('end marker inside an LZMA2 chunk');
          }
        }
      }
      copyMatch(rep0, n, limit);
    }
  };

  for (let chunks = 0; ; chunks++) {
    if (ip >= src.length) fail('LZMA2 data runs past the block');
    const control = src[ip++];
    if (control === 0) return op;
    if (control === 1 || control === 2) {
      if (ip + 2 > src.length) fail('LZMA2 chunk header runs past the block');
      const size = ((src[ip] << 8) | src[ip + 1]) + 1;
      ip += 2;
      if (control === 1) {
        dictStart = op;
        needDictReset = false;
      } else if (needDictReset) fail('first LZMA2 chunk does not reset the dictionary');
      if (ip + size > src.length || op + size > out.length) fail('uncompressed LZMA2 chunk runs past the block or the output');
      out.set(src.subarray(ip, ip + size), op);
      ip += size;
      op += size;
      continue;
    }
    if (control < 0x80) fail(`LZMA2 control byte 0x${control.toString(16)} is not defined`);
    if (ip + 4 > src.length) fail('LZMA2 chunk header runs past the block');
    const unpacked = (control & 0x1f) * 65536 + ((src[ip] << 8) | src[ip + 1]) + 1;
    const packed = ((src[ip + 2] << 8) | src[ip + 3]) + 1;
    ip += 4;
    const reset = (control >> 5) & 3;
    if (reset === 3) {
      dictStart = op;
      needDictReset = false;
    } else if (needDictReset) fail('first LZMA2 chunk does not reset the dictionary');
    if (reset >= 2) {
      if (ip >= src.length) fail('LZMA2 properties run past the block');
      let d = src[ip++];
      if (d >= 9 * 5 * 5) fail('LZMA properties out of range');
      lc = d % 9;
      d = Math.floor(d / 9);
      lp = d % 5;
      pb = Math.floor(d / 5);
      if (lc + lp > 4) fail('LZMA2 allows lc + lp of 4 at most');
      if (literals.length !== 0x300 << (lc + lp)) literals = new Uint16Array(0x300 << (lc + lp));
      havePropsSet = true;
    } else if (!havePropsSet) fail('first LZMA chunk sets no properties');
    if (reset >= 1) resetState();
    if (op + unpacked > out.length) fail(`LZMA2 chunk of ${unpacked} bytes runs past the output`);
    chunkEnd = ip + packed;
    if (chunkEnd > src.length) fail('LZMA2 chunk runs past the block');
    if (next() !== 0) fail('range coder does not start with 0');
    code = 0;
    for (let i = 0; i < 4; i++) code = code * 256 + next();
    range = 0xffffffff;
    if (code === range) fail('range coder starts at its end');
    decodeChunk(op + unpacked);
    ip = chunkEnd;
    if (chunks > out.length) fail('more LZMA2 chunks than output bytes');
  }
}
