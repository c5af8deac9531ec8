/** A fixed-size set of small integers, one bit each: which MiBs of a file something already claimed. */
export class Bitmap {
  private readonly bits: Uint8Array;

  constructor(readonly length: number) {
    this.bits = new Uint8Array(Math.ceil(length / 8));
  }

  has(i: number): boolean {
    return (this.bits[i >> 3] & (1 << (i & 7))) !== 0;
  }

  /** The first set bit in [from, to), or -1. */
  firstSet(from: number, to: number): number {
    for (let i = from; i < to; i++) if (this.has(i)) return i;
    return -1;
  }

  setRange(from: number, to: number): void {
    for (let i = from; i < to; i++) this.bits[i >> 3] |= 1 << (i & 7);
  }

  /** Runs of set bits, in order; empty bytes are passed over eight bits at a time. */
  *runs(): Generator<{ start: number; end: number }> {
    let i = 0;
    while (i < this.length) {
      if ((i & 7) === 0 && this.bits[i >> 3] === 0) {
        i += 8;
        continue;
      }
      if (!this.has(i)) {
        i++;
        continue;
      }
      const start = i;
      while (i < this.length && this.has(i)) i++;
      yield { start, end: i };
    }
  }
}
