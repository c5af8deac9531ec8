import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { VDISK, needPeers, sh, tempDir, vdisk } from './helpers/peers.js';
import { buildKillShim } from './helpers/crash.js';
import { MiB, qemuRead } from './helpers/vhd.js';
import { checkImage, exitCodeOf, openImage } from '../src/index.js';

/** The whole disk, read in process (a CLI run per cut costs more than the cut). */
async function readAll(path: string): Promise<Buffer> {
  const img = await openImage(path);
  try {
    const b = Buffer.alloc(img.virtualSize);
    await img.read(b, 0);
    return b;
  } finally {
    await img.close();
  }
}

function cutOff(shim: string, args: string[], afterWrites: number, torn: boolean): boolean {
  const r = spawnSync(process.execPath, [VDISK, ...args], {
    env: { ...process.env, LD_PRELOAD: shim, KILL_AFTER_WRITES: String(afterWrites), KILL_TORN: torn ? '1' : '0' },
    stdio: 'ignore',
  });
  return r.signal === 'SIGKILL';
}

function oldOrNew(now: Buffer, old: Buffer, want: Buffer, what: string): void {
  assert.equal(now.length, old.length, what);
  for (let s = 0; s < now.length; s += 512) {
    const sector = now.subarray(s, s + 512);
    if (!sector.equals(old.subarray(s, s + 512)) && !sector.equals(want.subarray(s, s + 512))) {
      assert.fail(`${what}: sector ${s / 512} holds neither its old nor its new content`);
    }
  }
}

for (const [kind, torn] of [['dynamic', false], ['dynamic', true], ['differencing', false]] as const) {
  {
    test(`a ${kind} VHD write cut off at every write${torn ? ' (torn mid-write)' : ''} leaves each sector old or new, as vdisk and qemu-img read it`, async (t) => {
      if (!needPeers(t, 'qemu-img', 'qemu-io', 'cc')) return;
      const dir = tempDir(t);
      const shim = buildKillShim(dir);
      let base = join(dir, 'base.vhd');
      sh('qemu-img', ['create', '-q', '-f', 'vpc', base, '16M']);
      sh('qemu-io', ['-f', 'vpc', '-c', 'write -P 0x71 2M 1M', base]);
      if (kind === 'differencing') {
        const child = join(dir, 'child.vhd');
        assert.equal(vdisk(['create', '-q', '-f', 'vpc', '-b', base, child]).code, 0);
        base = child;
      }
      const old = await readAll(base);
      const data = randomBytes(5 * MiB + 777);
      writeFileSync(join(dir, 'in.bin'), data);
      const offset = 2_500_001; // over the stored block and new ones, unaligned at both ends
      const want = Buffer.from(old);
      data.copy(want, offset);
      let cuts = 0;
      for (let n = 0; n < 100; n++) {
        const img = join(dir, kind === 'differencing' ? 'child-cut.vhd' : `cut-${n}.vhd`);
        copyFileSync(base, img);
        if (!cutOff(shim, ['write', img, join(dir, 'in.bin'), '--offset', String(offset)], n, torn)) {
          oldOrNew(await readAll(img), want, want, `n=${n} (completed)`);
          break;
        }
        cuts++;
        oldOrNew(await readAll(img), old, want, `n=${n}`);
        if (kind === 'dynamic') oldOrNew(qemuRead(dir, img), old, want, `n=${n}, read by qemu-img`);
        // Nothing worse than leaked space, and that repairs.
        const look = await checkImage(img);
        assert.ok(exitCodeOf(look) === 0 || exitCodeOf(look) === 3, `n=${n}: ${JSON.stringify(look.findings)}`);
        if (exitCodeOf(look) !== 0) {
          const fixed = await checkImage(img, { repair: 'all' });
          assert.equal(exitCodeOf(await checkImage(img)), 0, `n=${n}: after -r all: ${JSON.stringify(fixed.findings)}`);
          oldOrNew(await readAll(img), old, want, `n=${n} after repair`);
        }
      }
      assert.ok(cuts >= 8, `cut at ${cuts} points`);
    });
  }
}
