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
  while (ip < src.length) {
    const token = src[ip++];
    let lit = token >> 4;
    if (lit === 15) {
      for (;;) {
        if (ip >= src.length) fail('literal length runs past the input');
        const b = src[ip++];
        lit += b;
        if (lit > out.length) fail('literal length exceeds the output');
        if (b !== 255) break;
      }
    }
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
    let len = (token & 15) + 4;
    if ((token & 15) === 15) {
      for (;;) {
        if (ip >= src.length) fail('match length runs past the input');
        const b = src[ip++];
        len += b;
        if (len > out.length) fail('match length exceeds the output');
        if (b !== 255) break;
      }
    }
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
