import type { VolumeReader } from '../types.js';

/** Bytes read at once for small reads, and how many such windows are kept (8 MiB). */
const WINDOW = 1024 * 1024;
const MAX_WINDOWS = 8;

interface Slot {
  /** The window it holds, or -1 once its read failed. */
  index: number;
  buf: Buffer;
  ready: Promise<void>;
  /** Readers waiting to copy out of it: a slot in use is not refilled. */
  users: number;
}

/**
 * Small reads served from aligned 1 MiB windows of the volume. Directories and small files are mostly
 * laid out one after another (every FAT writer allocates forward), so extracting a tree of small files
 * costs one read per MiB instead of one per file: on a busy machine each read is a thread-pool round
 * trip. The windows' buffers are allocated once and refilled (fresh 1 MiB buffers per window kept the
 * garbage collector busy); large reads go straight through and are not cached.
 */
export class ReadWindows implements VolumeReader {
  /** Least recently used first. */
  private readonly slots: Slot[] = [];

  constructor(private readonly volume: VolumeReader) {}

  get size(): number {
    return this.volume.size;
  }

  private fill(slot: Slot): Promise<void> {
    const at = slot.index * WINDOW;
    if (this.volume.readInto) return this.volume.readInto(slot.buf, at);
    return this.volume.read(at, WINDOW).then((b) => void b.copy(slot.buf));
  }

  /** The slot holding window `index`, filled or being filled, marked as in use by one more reader. */
  private window(index: number): Slot {
    let at = this.slots.findIndex((s) => s.index === index);
    let slot: Slot;
    if (at >= 0) {
      slot = this.slots[at];
      this.slots.splice(at, 1);
    } else {
      at = this.slots.length < MAX_WINDOWS ? -1 : this.slots.findIndex((s) => s.users === 0);
      if (at >= 0) {
        slot = this.slots[at];
        this.slots.splice(at, 1);
      } else {
        // All slots in use (or not all made yet): a new buffer, kept only while there is room.
        slot = { index, buf: Buffer.allocUnsafe(WINDOW), ready: Promise.resolve(), users: 0 };
      }
      slot.index = index;
      slot.ready = this.fill(slot);
      // A failed read is not kept: the next caller tries again and sees the error itself.
      slot.ready.catch(() => {
        if (slot.index === index) slot.index = -1;
      });
    }
    if (this.slots.length < MAX_WINDOWS) this.slots.push(slot);
    slot.users++;
    return slot;
  }

  /** Copies window bytes [from, from + length) to `into` at `to` once the window is read. */
  private async copy(index: number, from: number, length: number, into: Uint8Array, to: number): Promise<void> {
    const slot = this.window(index);
    try {
      await slot.ready;
      into.set(slot.buf.subarray(from, from + length), to);
    } finally {
      slot.users--;
    }
  }

  /** Fills `buf`: large reads straight into it when the volume can, small ones from the windows. */
  async readInto(buf: Uint8Array, offset: number): Promise<void> {
    const length = buf.length;
    if (length > WINDOW / 4) {
      if (this.volume.readInto) return this.volume.readInto(buf, offset);
      buf.set(await this.volume.read(offset, length));
      return;
    }
    if (length === 0) return;
    const first = Math.floor(offset / WINDOW);
    const last = Math.floor((offset + length - 1) / WINDOW);
    const from = offset - first * WINDOW;
    if (first === last) return this.copy(first, from, length, buf, 0);
    const split = WINDOW - from;
    await Promise.all([this.copy(first, from, split, buf, 0), this.copy(last, 0, length - split, buf, split)]);
  }

  async read(offset: number, length: number): Promise<Buffer> {
    if (length > WINDOW / 4) return this.volume.read(offset, length);
    const out = Buffer.allocUnsafe(length);
    await this.readInto(out, offset);
    return out;
  }
}
