/**
 * The LZ4 block format (lz4_Block_format.md), as squashfs stores each block: sequences of a token,
 * literals and a back reference, no frame. Every length is checked against the input left and the
 * output's fixed size, so damaged input ends in an error, never a write out of bounds or a long loop.
 */
export function lz4DecodeBlock(src: Uint8Array, out: Uint8Array): number {
  let ip = 0;
  let op = 0;
  const fail = (what: string): never => {
    throw new Error(`lz4 block ${what} at input byte ${ip}`);
  };
  // A 4-bit length of 15 goes on in bytes, each added, until one below 255.
  const extend = (n: number, what: string): number => {
    for (;;) {
      if (ip >= src.length) fail(`${what} length runs past the input`);
      const b = src[ip++];
      n += b;
      if (n > out.length) fail(`${what} length exceeds the output`);
      if (b !== 255) return n;
    }
  };
  while (ip < src.length) {
    const token = src[ip++];
    const lit = token >> 4 === 15 ? extend(15, 'literal') : token >> 4;
    if (ip + lit > src.length) fail('literals run past the input');
    if (op + lit > out.length) fail('literals run past the output');
    out.set(src.subarray(ip, ip + lit), op);
    ip += lit;
    op += lit;
    // The last sequence has literals only.
    if (ip === src.length) break;
    if (ip + 2 > src.length) fail('match offset runs past the input');
    const offset = src[ip] | (src[ip + 1] << 8);
    ip += 2;
    if (offset === 0 || offset > op) fail(`match offset ${offset} points before the output's start`);
    const len = (token & 15) === 15 ? extend(19, 'match') : (token & 15) + 4;
    if (op + len > out.length) fail('match runs past the output');
    let from = op - offset;
    if (offset >= len) {
      out.copyWithin(op, from, from + len);
      op += len;
    } else {
      // Overlapping: the match repeats bytes it is writing.
      for (const end = op + len; op < end;) out[op++] = out[from++];
    }
  }
  return op;
}
