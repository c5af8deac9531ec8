import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { tempDir, vdisk } from './helpers/peers.js';
import { mapVhdx } from './helpers/mutate.js';
import { vhdxWith, vdiskWrite } from './helpers/vhdxlife.js';

const MiB = 1024 * 1024;

/**
 * A chain with one child whose metadata, BAT, bitmaps or region table have random bytes: every
 * command here either works or fails with one line, no stack trace, in bounded time.
 */
test('damaged children and images: resize, compact, commit and rebase fail in one line or work', (t) => {
  const dir = tempDir(t);
  const base = join(dir, 'base.vhdx');
  vhdxWith(base, 4 * MiB, Buffer.alloc(2 * MiB, 0x5a));
  const child0 = join(dir, 'child0.vhdx');
  assert.equal(vdisk(['create', '-q', '-b', base, child0]).code, 0);
  vdiskWrite(child0, 3000, Buffer.alloc(70_000, 0x33));
  const pristine = readFileSync(child0);
  const m = mapVhdx(pristine);
  const targets = [m.regionTable[0], m.bat, m.metadata, m.metadata + 64 * 1024, 4 * MiB + 4 * MiB];
  let run = 0;
  fc.assert(
    fc.property(
      fc.constantFrom(...targets),
      fc.array(fc.record({ at: fc.integer({ min: 0, max: 4095 }), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 8 }),
      fc.constantFrom(['commit'], ['commit', '-d'], ['rebase', '-b', base], ['rebase', '-u', '-b', base], ['resize', '+1M'], ['compact'], ['compact', '--dry-run']),
      (where, pokes, cmd) => {
        const d = join(dir, `r${run++}`);
        mkdirSync(d);
        copyFileSync(base, join(d, 'base.vhdx'));
        const b = Buffer.from(pristine);
        for (const p of pokes) if (where + p.at < b.length) b[where + p.at] = p.value;
        const child = join(d, 'child.vhdx');
        writeFileSync(child, b);
        const args = cmd.map((a) => (a === base ? join(d, 'base.vhdx') : a));
        const started = Date.now();
        const r = vdisk([...args, child]);
        assert.ok(Date.now() - started < 20_000, 'bounded time');
        if (r.code !== 0) {
          assert.equal(r.code, 1, `${cmd.join(' ')}: exit ${r.code}: ${r.stderr}`);
          assert.match(r.stderr, /^vdisk: [^\n]+\n$/, `${cmd.join(' ')}: one line: ${r.stderr}`);
        }
        assert.doesNotMatch(r.stderr, /\n\s+at /);
      },
    ),
    { numRuns: 16 },
  );
});
