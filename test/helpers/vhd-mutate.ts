/** Recomputes a VHD checksum (one's complement of the byte sum) of `length` bytes at `start` in place. */
export function resealVhd(buf: Buffer, start: number, length: number, checksumAt: number): void {
  buf.writeUInt32BE(0, start + checksumAt);
  let sum = 0;
  for (let i = 0; i < length; i++) sum += buf[start + i];
  buf.writeUInt32BE(~sum >>> 0, start + checksumAt);
}

/** Reseals the footer copy, the dynamic header (at 512) and the trailing footer of a dynamic VHD. */
export function resealAll(buf: Buffer): void {
  resealVhd(buf, 0, 512, 64);
  resealVhd(buf, 512, 1024, 36);
  resealVhd(buf, buf.length - 512, 512, 64);
}
