/**
 * LZO1X decompression (the classic bitstream that lzo1x_1 and lzo1x_999 write and squashfs stores
 * per block, no header), following the instruction set the Linux kernel's lzo1x_decompress_safe
 * reads: literal runs, and matches of three kinds by their first byte (M2 >= 64, M3 32-63, M4 16-31,
 * short matches < 16 after literals), ended by an M4 match at distance 0. Every length and distance
 * is checked against the input left, the output's fixed size and the output written so far.
 */
export function lzoDecodeBlock(src: Uint8Array, out: Uint8Array): number {
  let ip = 0;
  let op = 0;
  const fail = (what: string): never => {
    throw new Error(`lzo block ${what} at input byte ${ip}`);
  };
  const needIn = (n: number) => {
    if (ip + n > src.length) fail('runs past the input');
  };
  const needOut = (n: number) => {
    if (op + n > out.length) fail('runs past the output');
  };
  // A zero length field goes on in bytes: each 0 adds 255, the first other byte ends it.
  const extend = (base: number): number => {
    let zeros = 0;
    for (;;) {
      needIn(1);
      if (src[ip] !== 0) break;
      ip++;
      if (++zeros * 255 > out.length) fail('length exceeds the output');
    }
    return base + zeros * 255 + src[ip++];
  };
  const literals = (n: number) => {
    needIn(n);
    needOut(n);
    out.set(src.subarray(ip, ip + n), op);
    ip += n;
    op += n;
  };
  const match = (from: number, n: number) => {
    if (from < 0) fail(`match distance ${op - from} points before the output's start`);
    needOut(n);
    // Byte by byte: a match may overlap the bytes it writes.
    for (let i = 0; i < n; i++) out[op++] = out[from + i];
  };

  needIn(3);
  // 0 after literals and a match, 1-3 after a match with that many trailing literals, 4 after a literal run.
  let state = 0;
  let t: number;
  if (src[ip] > 17) {
    t = src[ip++] - 17;
    if (t < 4) {
      literals(t);
      state = t;
    } else {
      literals(t);
      state = 4;
    }
  }
  for (;;) {
    needIn(1);
    t = src[ip++];
    let from: number;
    let next: number;
    if (t < 16) {
      if (state === 0) {
        literals((t === 0 ? extend(15) : t) + 3);
        state = 4;
        continue;
      }
      needIn(1);
      next = t & 3;
      if (state !== 4) {
        from = op - 1 - (t >> 2) - (src[ip++] << 2);
        match(from, 2);
      } else {
        from = op - (1 + 0x800) - (t >> 2) - (src[ip++] << 2);
        match(from, 3);
      }
    } else if (t >= 64) {
      needIn(1);
      next = t & 3;
      from = op - 1 - ((t >> 2) & 7) - (src[ip++] << 3);
      match(from, (t >> 5) + 1);
    } else if (t >= 32) {
      let len = (t & 31) + 2;
      if (len === 2) len = extend(33);
      needIn(2);
      const d = src[ip] | (src[ip + 1] << 8);
      ip += 2;
      next = d & 3;
      match(op - 1 - (d >> 2), len);
    } else {
      let len = (t & 7) + 2;
      if (len === 2) len = extend(9);
      needIn(2);
      const d = src[ip] | (src[ip + 1] << 8);
      ip += 2;
      next = d & 3;
      from = op - ((t & 8) << 11) - (d >> 2);
      if (from === op) {
        // The end marker: an M4 match of length 3 at distance 0, and nothing after it.
        if (len !== 3) fail('end marker with a length');
        if (ip !== src.length) fail('input goes on past the end marker');
        return op;
      }
      match(from - 0x4000, len);
    }
    state = next;
    literals(next);
  }
}
