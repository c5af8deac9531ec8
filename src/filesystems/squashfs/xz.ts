/**
 * xz as squashfs stores each block: one .xz stream (xz-file-format 1.0.4) holding one block of LZMA2
 * chunks. The container is read for what decoding needs (stream flags, the block header and its
 * filter chain); integrity checks are not verified (squashfs has none of its own either, and every
 * length and distance is bounded). Of the BCJ converters (-Xbcj), x86's is undone; the others are refused.
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
  /** The x86 BCJ filter's start offset, when the chain has it (mksquashfs -Xbcj x86, as archiso uses). */
  let x86: number | null = null;
  for (let i = 0; i < filters; i++) {
    const id = varint();
    const size = varint();
    if (p + size > end) fail('filter properties run past the header');
    if (id === LZMA2) {
      if (i !== filters - 1 || size !== 1) fail('LZMA2 is not the last filter or has properties of other than 1 byte');
      dictProps = src[p];
    } else if (id === X86 && i === 0 && (size === 0 || size === 4)) {
      x86 = size === 0 ? 0 : (src[p] | (src[p + 1] << 8) | (src[p + 2] << 16) | (src[p + 3] << 24)) >>> 0;
    } else {
      throw new XzUnsupported(`xz filter ${FILTERS[id] ?? `0x${id.toString(16)}`}`);
    }
    p += size;
  }
  if (dictProps < 0 || dictProps > 40) fail('no LZMA2 filter, or a dictionary size past 4 GiB');
  const n = lzma2(src, end + 4, out);
  if (x86 !== null) unBcjX86(out.subarray(0, n), x86);
  return n;
}

const X86 = 0x04;
const MASK_ALLOWED = [true, true, true, false, true, false, false, false];
const MASK_BIT_NUM = [0, 1, 2, 2, 3, 3, 3, 3];
const msByte = (b: number) => b === 0x00 || b === 0xff;

/**
 * Undoes the x86 BCJ filter in place (xz-embedded's bcj_x86): the 32-bit operands of E8/E9 (call,
 * jmp) instructions were turned from absolute back into relative addresses. The last four bytes are
 * never converted, as the encoder left them.
 */
function unBcjX86(buf: Uint8Array, start: number): void {
  let prevPos = -1;
  let prevMask = 0;
  const size = buf.length - 4;
  for (let i = 0; i < size; i++) {
    if ((buf[i] & 0xfe) !== 0xe8) continue;
    const gap = i - prevPos;
    if (gap > 3) prevMask = 0;
    else {
      prevMask = (prevMask << (gap - 1)) & 7;
      if (prevMask !== 0) {
        const b = buf[i + 4 - MASK_BIT_NUM[prevMask]];
        if (!MASK_ALLOWED[prevMask] || msByte(b)) {
          prevPos = i;
          prevMask = (prevMask << 1) | 1;
          continue;
        }
      }
    }
    prevPos = i;
    if (msByte(buf[i + 4])) {
      let src = (buf[i + 1] | (buf[i + 2] << 8) | (buf[i + 3] << 16) | (buf[i + 4] << 24)) >>> 0;
      let dest: number;
      for (;;) {
        dest = (src - ((start + i + 5) >>> 0)) >>> 0;
        if (prevMask === 0) break;
        const j = MASK_BIT_NUM[prevMask] * 8;
        if (!msByte((dest >>> (24 - j)) & 0xff)) break;
        src = (dest ^ (2 ** (32 - j) - 1)) >>> 0;
      }
      dest &= 0x01ffffff;
      dest = (dest | (0 - (dest & 0x01000000))) >>> 0;
      buf[i + 1] = dest & 0xff;
      buf[i + 2] = (dest >>> 8) & 0xff;
      buf[i + 3] = (dest >>> 16) & 0xff;
      buf[i + 4] = dest >>> 24;
      i += 4;
    } else prevMask = (prevMask << 1) | 1;
  }
}

// LZMA (the range-coded Lempel-Ziv-Markov chain) inside LZMA2's chunks, as in the LZMA SDK's spec.
// A class rather than closures: V8 keeps the coder's fields in registers far better than captured variables.
const NUM_STATES = 12;
const POS_STATES_MAX = 16;
const MATCH_MIN = 2;
const PROB_INIT = 1024;

class LenDecoder {
  choice = new Uint16Array(2);
  low = new Uint16Array(POS_STATES_MAX << 3);
  mid = new Uint16Array(POS_STATES_MAX << 3);
  high = new Uint16Array(256);
  reset(): void {
    this.choice.fill(PROB_INIT);
    this.low.fill(PROB_INIT);
    this.mid.fill(PROB_INIT);
    this.high.fill(PROB_INIT);
  }
}

class Lzma2 {
  private readonly src: Uint8Array;
  private readonly out: Uint8Array;
  private ip: number;
  private op = 0;
  private range = 0;
  private code = 0;
  private chunkEnd = 0;
  private lc = 0;
  private lp = 0;
  private pb = 0;
  private literals = new Uint16Array(0x300);
  private readonly isMatch = new Uint16Array(NUM_STATES << 4);
  private readonly isRep = new Uint16Array(NUM_STATES);
  private readonly isRepG0 = new Uint16Array(NUM_STATES);
  private readonly isRepG1 = new Uint16Array(NUM_STATES);
  private readonly isRepG2 = new Uint16Array(NUM_STATES);
  private readonly isRep0Long = new Uint16Array(NUM_STATES << 4);
  private readonly posSlot = new Uint16Array(4 << 6);
  private readonly specPos = new Uint16Array(128);
  private readonly align = new Uint16Array(16);
  private readonly lenDec = new LenDecoder();
  private readonly repLenDec = new LenDecoder();
  private state = 0;
  private rep0 = 0;
  private rep1 = 0;
  private rep2 = 0;
  private rep3 = 0;
  /** Where the dictionary starts: a dictionary reset forbids matches before it. */
  private dictStart = 0;

  constructor(src: Uint8Array, start: number, out: Uint8Array) {
    this.src = src;
    this.ip = start;
    this.out = out;
  }

  private next(): number {
    if (this.ip >= this.chunkEnd) fail('LZMA chunk runs past its packed size');
    return this.src[this.ip++];
  }

  private bit(probs: Uint16Array, i: number): number {
    const prob = probs[i];
    const bound = (this.range >>> 11) * prob;
    let b: number;
    if (this.code < bound) {
      this.range = bound;
      probs[i] = prob + ((2048 - prob) >> 5);
      b = 0;
    } else {
      this.range -= bound;
      this.code -= bound;
      probs[i] = prob - (prob >> 5);
      b = 1;
    }
    if (this.range < 0x1000000) {
      this.range *= 256;
      this.code = this.code * 256 + this.next();
    }
    return b;
  }

  private tree(probs: Uint16Array, base: number, bits: number): number {
    let m = 1;
    for (let i = 0; i < bits; i++) m = (m << 1) + this.bit(probs, base + m);
    return m - (1 << bits);
  }

  private reverse(probs: Uint16Array, base: number, bits: number): number {
    let m = 1;
    let sym = 0;
    for (let i = 0; i < bits; i++) {
      const b = this.bit(probs, base + m);
      m = (m << 1) + b;
      sym |= b << i;
    }
    return sym;
  }

  private direct(bits: number): number {
    let v = 0;
    for (let i = 0; i < bits; i++) {
      this.range = this.range >>> 1;
      let b = 0;
      if (this.code >= this.range) {
        this.code -= this.range;
        b = 1;
      }
      v = v * 2 + b;
      if (this.range < 0x1000000) {
        this.range *= 256;
        this.code = this.code * 256 + this.next();
      }
    }
    return v;
  }

  private resetState(): void {
    this.literals.fill(PROB_INIT);
    for (const a of [this.isMatch, this.isRep, this.isRepG0, this.isRepG1, this.isRepG2, this.isRep0Long, this.posSlot, this.specPos, this.align]) a.fill(PROB_INIT);
    this.lenDec.reset();
    this.repLenDec.reset();
    this.state = 0;
    this.rep0 = this.rep1 = this.rep2 = this.rep3 = 0;
  }

  private len(d: LenDecoder, posState: number): number {
    if (this.bit(d.choice, 0) === 0) return this.tree(d.low, posState << 3, 3);
    if (this.bit(d.choice, 1) === 0) return 8 + this.tree(d.mid, posState << 3, 3);
    return 16 + this.tree(d.high, 0, 8);
  }

  private copyMatch(dist: number, n: number, limit: number): void {
    const op = this.op;
    if (dist >= op - this.dictStart) fail(`match distance ${dist + 1} reaches before the dictionary`);
    if (op + n > limit) fail('match runs past the chunk');
    const out = this.out;
    const from = op - dist - 1;
    if (dist + 1 >= n) out.copyWithin(op, from, from + n);
    // Overlapping: the match repeats bytes it is writing.
    else for (let i = 0; i < n; i++) out[op + i] = out[from + i];
    this.op = op + n;
  }

  private literal(): void {
    const out = this.out;
    const op = this.op;
    const prev = op > this.dictStart ? out[op - 1] : 0;
    const probs = this.literals;
    const base = 0x300 * (((op & ((1 << this.lp) - 1)) << this.lc) + (prev >> (8 - this.lc)));
    let sym = 1;
    if (this.state >= 7) {
      if (this.rep0 >= op - this.dictStart) fail('matched literal reaches before the dictionary');
      let matchByte = out[op - this.rep0 - 1];
      while (sym < 0x100) {
        const mb = (matchByte >> 7) & 1;
        matchByte <<= 1;
        const b = this.bit(probs, base + ((1 + mb) << 8) + sym);
        sym = (sym << 1) | b;
        if (mb !== b) break;
      }
    }
    while (sym < 0x100) sym = (sym << 1) | this.bit(probs, base + sym);
    out[this.op++] = sym & 0xff;
    const s = this.state;
    this.state = s < 4 ? 0 : s < 10 ? s - 3 : s - 6;
  }

  private chunk(limit: number): void {
    const pbMask = (1 << this.pb) - 1;
    while (this.op < limit) {
      const posState = this.op & pbMask;
      const state = this.state;
      if (this.bit(this.isMatch, (state << 4) + posState) === 0) {
        this.literal();
        continue;
      }
      let n: number;
      if (this.bit(this.isRep, state) === 1) {
        if (this.op === this.dictStart) fail('repeated match before any data');
        if (this.bit(this.isRepG0, state) === 0) {
          if (this.bit(this.isRep0Long, (state << 4) + posState) === 0) {
            this.state = state < 7 ? 9 : 11;
            this.copyMatch(this.rep0, 1, limit);
            continue;
          }
        } else {
          let dist: number;
          if (this.bit(this.isRepG1, state) === 0) dist = this.rep1;
          else {
            if (this.bit(this.isRepG2, state) === 0) dist = this.rep2;
            else {
              dist = this.rep3;
              this.rep3 = this.rep2;
            }
            this.rep2 = this.rep1;
          }
          this.rep1 = this.rep0;
          this.rep0 = dist;
        }
        n = this.len(this.repLenDec, posState) + MATCH_MIN;
        this.state = state < 7 ? 8 : 11;
      } else {
        this.rep3 = this.rep2;
        this.rep2 = this.rep1;
        this.rep1 = this.rep0;
        n = this.len(this.lenDec, posState) + MATCH_MIN;
        this.state = state < 7 ? 7 : 10;
        const slot = this.tree(this.posSlot, Math.min(n - MATCH_MIN, 3) << 6, 6);
        if (slot < 4) this.rep0 = slot;
        else {
          const bits = (slot >> 1) - 1;
          const base = (2 | (slot & 1)) * 2 ** bits;
          if (slot < 14) this.rep0 = base + this.reverse(this.specPos, base - slot, bits);
          else {
            this.rep0 = base + this.direct(bits - 4) * 16 + this.reverse(this.align, 0, 4);
            // All ones is LZMA's end marker, which LZMA2 chunks do not use.
            if (this.rep0 === 0xffffffff) fail('end marker inside an LZMA2 chunk');
          }
        }
      }
      this.copyMatch(this.rep0, n, limit);
    }
  }

  /** All the chunks up to LZMA2's end byte; the output's length. */
  run(): number {
    const src = this.src;
    const out = this.out;
    let needDictReset = true;
    let haveProps = false;
    for (let chunks = 0; ; chunks++) {
      if (this.ip >= src.length) fail('LZMA2 data runs past the block');
      const control = src[this.ip++];
      if (control === 0) return this.op;
      if (chunks > out.length) fail('more LZMA2 chunks than output bytes');
      if (control === 1 || control === 2) {
        if (this.ip + 2 > src.length) fail('LZMA2 chunk header runs past the block');
        const size = ((src[this.ip] << 8) | src[this.ip + 1]) + 1;
        this.ip += 2;
        if (control === 1) {
          this.dictStart = this.op;
          needDictReset = false;
        } else if (needDictReset) fail('first LZMA2 chunk does not reset the dictionary');
        if (this.ip + size > src.length || this.op + size > out.length) fail('uncompressed LZMA2 chunk runs past the block or the output');
        out.set(src.subarray(this.ip, this.ip + size), this.op);
        this.ip += size;
        this.op += size;
        continue;
      }
      if (control < 0x80) fail(`LZMA2 control byte 0x${control.toString(16)} is not defined`);
      if (this.ip + 4 > src.length) fail('LZMA2 chunk header runs past the block');
      const unpacked = (control & 0x1f) * 65536 + ((src[this.ip] << 8) | src[this.ip + 1]) + 1;
      const packed = ((src[this.ip + 2] << 8) | src[this.ip + 3]) + 1;
      this.ip += 4;
      const reset = (control >> 5) & 3;
      if (reset === 3) {
        this.dictStart = this.op;
        needDictReset = false;
      } else if (needDictReset) fail('first LZMA2 chunk does not reset the dictionary');
      if (reset >= 2) {
        if (this.ip >= src.length) fail('LZMA2 properties run past the block');
        let d = src[this.ip++];
        if (d >= 9 * 5 * 5) fail('LZMA properties out of range');
        this.lc = d % 9;
        d = Math.floor(d / 9);
        this.lp = d % 5;
        this.pb = Math.floor(d / 5);
        if (this.lc + this.lp > 4) fail('LZMA2 allows lc + lp of 4 at most');
        if (this.literals.length !== 0x300 << (this.lc + this.lp)) this.literals = new Uint16Array(0x300 << (this.lc + this.lp));
        haveProps = true;
      } else if (!haveProps) fail('first LZMA chunk sets no properties');
      if (reset >= 1) this.resetState();
      if (this.op + unpacked > out.length) fail(`LZMA2 chunk of ${unpacked} bytes runs past the output`);
      this.chunkEnd = this.ip + packed;
      if (this.chunkEnd > src.length) fail('LZMA2 chunk runs past the block');
      if (this.next() !== 0) fail('range coder does not start with 0');
      this.code = 0;
      for (let i = 0; i < 4; i++) this.code = this.code * 256 + this.next();
      this.range = 0xffffffff;
      if (this.code === this.range) fail('range coder starts at its end');
      this.chunk(this.op + unpacked);
      this.ip = this.chunkEnd;
    }
  }
}

function lzma2(src: Uint8Array, start: number, out: Uint8Array): number {
  return new Lzma2(src, start, out).run();
}
