import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileStream, type FsFile } from '../src/filesystems/filesystem.js';

/**
 * fileStream (what `cat` and `tar` read files through) reads chunks ahead of its consumer: the bytes
 * come out whole and in order for any range, a failed or short read ends the stream where it happens,
 * and the file is closed once, with no read of it still in flight.
 */
function fakeFile(data: Buffer, opts: { failAt?: number; shortAt?: number; size?: number } = {}) {
  const state = { inFlight: 0, closes: 0, closedWithReads: 0, reads: 0 };
  const file: FsFile = {
    size: opts.size ?? data.length,
    async read(buf: Uint8Array, pos: number) {
      state.inFlight++;
      state.reads++;
      try {
        // Later chunks finish first: order must come from the stream, not from the reads.
        await new Promise((r) => setTimeout(r, 1 + ((pos / 1000) % 3)));
        if (opts.failAt !== undefined && pos <= opts.failAt && opts.failAt < pos + buf.length) throw new Error(`read failed at ${pos}`);
        const end = Math.min(opts.shortAt ?? data.length, data.length, pos + buf.length);
        const n = Math.max(0, end - pos);
        data.copy(buf, 0, pos, pos + n);
        return n;
      } finally {
        state.inFlight--;
      }
    },
    async close() {
      state.closes++;
      if (state.inFlight > 0) state.closedWithReads++;
    },
  };
  return { file, state };
}

async function collect(s: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

const data = Buffer.alloc(5500);
for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 8)) & 0xff;

test('every range of a file comes out whole and in order, and the file is closed once with nothing in flight', async () => {
  for (const [start, end] of [[undefined, undefined], [0, 0], [999, 1000], [1234, 5499], [4000, undefined], [5499, 5499]] as const) {
    const { file, state } = fakeFile(data);
    const out = await collect(fileStream(file, { start, end, chunk: 1000 }));
    assert.ok(out.equals(data.subarray(start ?? 0, end === undefined ? data.length : end + 1)), `${start}-${end}`);
    assert.equal(state.closes, 1);
    assert.equal(state.closedWithReads, 0);
  }
});

test('a failed read ends the stream with its error, after the bytes before it; a short file ends early', async () => {
  const failing = fakeFile(data, { failAt: 3500 });
  const s = fileStream(failing.file, { chunk: 1000 });
  const got: Buffer[] = [];
  await assert.rejects(
    (async () => {
      for await (const c of s) got.push(c as Buffer);
    })(),
    /read failed at 3000/,
  );
  assert.ok(Buffer.concat(got).equals(data.subarray(0, 3000)));
  assert.equal(failing.state.closes, 1);
  assert.equal(failing.state.closedWithReads, 0);

  // A file whose reads stop short of its size: the stream ends where the data does.
  const short = fakeFile(data, { shortAt: 2500 });
  assert.ok((await collect(fileStream(short.file, { chunk: 1000 }))).equals(data.subarray(0, 2500)));
  assert.equal(short.state.closes, 1);
  assert.equal(short.state.closedWithReads, 0);
});

test('a consumer that stops early closes the file once, after the reads ahead have settled', async () => {
  const { file, state } = fakeFile(data);
  const s = fileStream(file, { chunk: 1000 });
  for await (const c of s) {
    assert.equal((c as Buffer).length, 1000);
    break; // destroys the stream with reads ahead still in flight
  }
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(state.closes, 1);
  assert.equal(state.closedWithReads, 0);
  assert.ok(state.reads < 6, 'it does not read the whole file ahead');
});
