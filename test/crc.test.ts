import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { crc32 as nativeCrc32, crc32c as nativeCrc32c } from '@node-rs/crc32';

test('the JavaScript CRC fallback agrees with the native one, chained or not', async () => {
  process.env.VDISK_PURE_JS_CRC = '1';
  const js = await import(`../src/util/crc.js?pure=${Date.now()}`);
  delete process.env.VDISK_PURE_JS_CRC;
  assert.equal(js.crcImplementation(), 'javascript');
  assert.equal(js.crc32c(Buffer.from('123456789')), 0xe3069283);
  assert.equal(js.crc32(Buffer.from('123456789')), 0xcbf43926);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 5000 }), fc.uint8Array({ maxLength: 300 }), (a, b) => {
      assert.equal(js.crc32c(b, js.crc32c(a)), nativeCrc32c(Buffer.from(b), nativeCrc32c(Buffer.from(a))) >>> 0);
      assert.equal(js.crc32(a), nativeCrc32(Buffer.from(a)) >>> 0);
    }),
  );
});

test('the slicing-by-8 JavaScript CRC gives the published check values, at every length and alignment', async () => {
  process.env.VDISK_PURE_JS_CRC = '1';
  const js = await import(`../src/util/crc.js?vectors=${Date.now()}`);
  delete process.env.VDISK_PURE_JS_CRC;
  // RFC 3720 (iSCSI) appendix B.4 vectors for CRC-32C, and the usual CRC-32 check of a pangram.
  const inc = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
  assert.equal(js.crc32c(Buffer.alloc(32)), 0x8a9136aa);
  assert.equal(js.crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
  assert.equal(js.crc32c(inc), 0x46dd794e);
  assert.equal(js.crc32c(Buffer.from(inc).reverse()), 0x113fdb5c);
  assert.equal(js.crc32(Buffer.from('The quick brown fox jumps over the lazy dog')), 0x414fa339);
  assert.equal(js.crc32c(Buffer.alloc(0), 0x12345678), 0x12345678);
  // Every length around the 8-byte stride, at every start offset inside an 8-byte word.
  const data = Buffer.alloc(80);
  for (let i = 0; i < data.length; i++) data[i] = (i * 151 + 7) & 0xff;
  for (let at = 0; at < 8; at++) {
    for (let n = 0; at + n <= data.length; n++) {
      const piece = data.subarray(at, at + n);
      assert.equal(js.crc32c(piece, 0xdeadbeef), nativeCrc32c(Buffer.from(piece), 0xdeadbeef) >>> 0, `crc32c of ${n} bytes at ${at}`);
      assert.equal(js.crc32(piece, 7), nativeCrc32(Buffer.from(piece), 7) >>> 0, `crc32 of ${n} bytes at ${at}`);
    }
  }
});

test('crc32cRange and crc32cU32 equal crc32c over the view and over the word\'s little-endian bytes', async () => {
  const { crc32c, crc32cRange, crc32cU32 } = await import('../src/util/crc.js');
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), fc.nat(), fc.nat(), fc.integer({ min: 0, max: 0xffffffff }), (data, a, b, seed) => {
      const buf = Buffer.from(data);
      const start = buf.length ? a % (buf.length + 1) : 0;
      const end = start + (buf.length - start ? b % (buf.length - start + 1) : 0);
      assert.equal(crc32cRange(buf, start, end, seed), nativeCrc32c(buf.subarray(start, end), seed) >>> 0);
      const word = Buffer.alloc(4);
      word.writeUInt32LE(seed);
      assert.equal(crc32cU32(seed, a >>> 0), nativeCrc32c(word, a >>> 0) >>> 0);
      assert.equal(crc32c(buf, seed), crc32cRange(buf, 0, buf.length, seed));
    }),
  );
  // Past the native threshold the range goes to the addon, with the same answer.
  const big = Buffer.alloc(300 * 1024, 0x5a);
  assert.equal(crc32cRange(big, 3, big.length - 5, 9), nativeCrc32c(big.subarray(3, big.length - 5), 9) >>> 0);
});

test('large buffers (native) and small ones (tables) chain into the same checksums', async () => {
  const { crc32c, crc32, crcImplementation } = await import('../src/util/crc.js');
  assert.equal(crcImplementation(), 'native for large buffers');
  fc.assert(
    fc.property(fc.integer({ min: 256 * 1024, max: 600 * 1024 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 5000 }), (n, seed, cut) => {
      const data = Buffer.alloc(n);
      for (let i = 0; i < n; i += 97) data[i] = (i * 31 + seed) & 0xff;
      // Whole (native), and as a small head plus a large tail (tables, then native), and as small pieces (tables).
      const whole = crc32c(data);
      assert.equal(crc32c(data.subarray(cut), crc32c(data.subarray(0, cut))), whole);
      let pieces = 0;
      for (let at = 0; at < n; at += 60 * 1024) pieces = crc32c(data.subarray(at, Math.min(n, at + 60 * 1024)), pieces);
      assert.equal(pieces, whole);
      assert.equal(whole, nativeCrc32c(data) >>> 0);
      assert.equal(crc32(data), nativeCrc32(data) >>> 0);
    }),
    { numRuns: 20 },
  );
});

test('vdisk works with the JavaScript CRC (as the single-file executable runs)', () => {
  const r = spawnSync(process.execPath, ['bin/vdisk', 'create', '-q', '/tmp/vdisk-purejs-crc.vhdx', '8M'], { env: { ...process.env, VDISK_PURE_JS_CRC: '1' } });
  assert.equal(r.status, 0, r.stderr.toString());
  const c = spawnSync(process.execPath, ['bin/vdisk', 'check', '/tmp/vdisk-purejs-crc.vhdx']);
  assert.equal(c.status, 0, c.stdout.toString());
});
