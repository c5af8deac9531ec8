/**
 * LZNT1, the compression of NTFS-compressed attributes (MS-XCA section 2.5). A compression unit holds a
 * series of chunks, each standing for 4096 bytes of output: a 16-bit header (bits 0-11: the chunk's size
 * minus 3, bit 15: compressed; a zero header ends the unit), then either 4096 raw bytes or groups of a
 * flag byte and eight tokens: a literal byte for a clear bit, or a 16-bit back reference whose split
 * between offset and length bits moves with the position in the chunk (more offset bits further in).
 * A chunk that decompresses to less than 4096 bytes is followed by zeros up to its 4096 (MS-XCA 2.5.1.1).
 */

const CHUNK = 4096;

/**
 * Decompresses `src` into `dst` (the whole compression unit; the caller zero-fills it beforehand, so the
 * short chunks' tails are zeros). Returns null, or what is wrong with the data.
 */
export function lznt1Decompress(src: Uint8Array, dst: Uint8Array): string | null {
  let s = 0;
  let chunkStart = 0;
  while (chunkStart < dst.length && s + 2 <= src.length) {
    const header = src[s] | (src[s + 1] << 8);
    if (header === 0) return null;
    const size = (header & 0x0fff) + 3;
    if (s + size > src.length) return `chunk at ${s} runs past the compressed data`;
    const end = s + size;
    s += 2;
    const chunkEnd = Math.min(chunkStart + CHUNK, dst.length);
    let d = chunkStart;
    if ((header & 0x8000) === 0) {
      // Stored chunk: exactly 4096 raw bytes (fewer only at the end of the unit).
      const n = Math.min(end - s, chunkEnd - chunkStart);
      dst.set(src.subarray(s, s + n), d);
    } else {
      while (s < end && d < chunkEnd) {
        const flags = src[s++];
        for (let bit = 0; bit < 8 && s < end && d < chunkEnd; bit++) {
          if ((flags & (1 << bit)) === 0) {
            dst[d++] = src[s++];
            continue;
          }
          if (s + 2 > end) return `chunk at ${chunkStart}: back reference truncated`;
          const token = src[s] | (src[s + 1] << 8);
          s += 2;
          // The offset field is as wide as needed to reach the chunk's start (at least 4 bits).
          const pos = d - chunkStart;
          let offBits = 4;
          while ((1 << offBits) < pos) offBits++;
          const lenBits = 16 - offBits;
          const back = (token >>> lenBits) + 1;
          let len = (token & ((1 << lenBits) - 1)) + 3;
          if (back > pos) return `chunk at ${chunkStart}: back reference ${back} before the chunk's start`;
          if (d + len > chunkEnd) len = chunkEnd - d;
          // Overlapping copies repeat the pattern, so byte by byte.
          for (let i = 0; i < len; i++, d++) dst[d] = dst[d - back];
        }
      }
    }
    s = end;
    chunkStart += CHUNK;
  }
  return null;
}
