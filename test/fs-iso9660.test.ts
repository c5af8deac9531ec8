import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync, readFileSync, writeFileSync, statSync, openSync, writeSync, closeSync } from 'node:fs';
import { needPeers, tempDir, vdisk, sh, sha256 } from './helpers/peers.js';
import { compareTrees, withFs } from './helpers/fs-tree.js';
import { isoinfoListing, makeSourceTree, noise, walkOurs, walkSource, xorrisoLsdl, LONG_NAME, UNICODE_NAME, type Walked } from './helpers/iso.js';
import { VdiskError } from '../src/errors.js';


/** Ours against xorriso's reading: the same paths, types, permissions, owners, file sizes and link targets. */
function assertAgreesWithXorriso(ours: Map<string, Walked>, img: string, skip: (p: string) => boolean = () => false): void {
  const theirs = xorrisoLsdl(img);
  const mine = [...ours.keys()].filter((p) => !skip(p)).sort();
  assert.deepEqual(mine, [...theirs.keys()].sort(), 'the same paths as xorriso lists');
  for (const [p, t] of theirs) {
    const o = ours.get(p) as Walked;
    assert.equal(o.type, t.type, `${p}: type`);
    assert.equal(o.perms.toString(8), t.perms.toString(8), `${p}: permissions`);
    assert.equal(o.uid, t.uid, `${p}: uid`);
    assert.equal(o.gid, t.gid, `${p}: gid`);
    if (t.type === 'file') assert.equal(o.size, t.size, `${p}: size`);
    assert.equal(o.target, t.target, `${p}: symlink target`);
  }
}

/** Ours against the source tree, Rock Ridge style: everything, mtimes to the second included. */
function assertEqualsSource(ours: Map<string, Walked>, src: string, extra: string[] = []): void {
  const source = walkSource(src);
  const mine = [...ours.keys()].filter((p) => !extra.some((x) => p === x || p.startsWith(`${x}/`))).sort();
  assert.deepEqual(mine, [...source.keys()].sort());
  for (const [p, s] of source) {
    const o = ours.get(p) as Walked;
    assert.equal(o.type, s.type, `${p}: type`);
    assert.equal(o.perms.toString(8), s.perms.toString(8), `${p}: mode`);
    assert.equal(`${o.uid}:${o.gid}`, `${s.uid}:${s.gid}`, `${p}: owner`);
    if (s.type !== 'directory') assert.equal(o.size, s.size, `${p}: size`);
    if (s.type === 'file') {
      assert.ok(o.read?.equals(readFileSync(join(src, p))), `${p}: contents`);
      assert.equal(o.nlink, s.nlink, `${p}: links`);
    }
    assert.equal(o.target, s.target, `${p}: target`);
    assert.equal(o.mtime, s.mtime, `${p}: mtime`);
  }
}

describe('ISO-9660 reader against xorriso, isoinfo, 7-Zip and the source tree', () => {
  let dir: string;
  let src: string;
  before(() => {
    dir = tempDir({ after: (fn) => process.on('exit', fn) }, 'vdisk-iso-');
    src = join(dir, 'src');
    mkdirSync(src);
    makeSourceTree(src);
  });

  test('xorriso -R -J: Rock Ridge names, modes, owners, times, links and contents equal the source; xorriso and isoinfo agree; vdisk get copies it', async (t) => {
    if (!needPeers(t, 'xorriso', 'isoinfo', 'tar')) return;
    const img = join(dir, 'xorriso-rr.iso');
    sh('xorriso', ['-as', 'mkisofs', '-quiet', '-R', '-J', '-V', 'RR_VOLUME', '-o', img, src]);
    const before = await sha256(img);
    const ours = await withFs(img, async (fs) => {
      assert.equal(fs.type, 'iso9660');
      assert.equal((fs.reader as unknown as { tree: string }).tree, 'rockridge');
      assert.equal(fs.reader.label, 'RR_VOLUME');
      return walkOurs(fs);
    });
    assertEqualsSource(ours, src);
    assertAgreesWithXorriso(ours, img);
    // isoinfo shows Rock Ridge link counts (PX), directories included.
    for (const [p, info] of isoinfoListing(img, '-R')) {
      const o = ours.get(p);
      assert.ok(o, `${p} from isoinfo is ours too`);
      assert.equal(o.nlink, info.nlink, `${p}: links as isoinfo shows them`);
      // isoinfo's mode string leaves out set-id and sticky bits.
      assert.equal(o.perms & 0o777, info.perms, `${p}: permissions as isoinfo shows them`);
    }

    const out = join(dir, 'get-rr');
    const r = vdisk(['get', '-p', img, '/', out]);
    assert.equal(r.code, 0, r.stderr);
    // The fifo is skipped by get, with a warning; everything else is there as in the source.
    assert.match(r.stderr, /pipe/);
    const diffs = compareTrees(src, out, { modes: true, owners: true, mtimeMs: 0, hardlinks: true, ignore: ['pipe'] });
    assert.deepEqual(diffs, []);
    // vdisk tar, unpacked by GNU tar: the same tree, the fifo included.
    const tarOut = join(dir, 'tar-rr');
    mkdirSync(tarOut);
    const tr = vdisk(['tar', img, '/']);
    assert.equal(tr.code, 0, tr.stderr);
    sh('tar', ['-x', '-p', '--numeric-owner', '-C', tarOut], tr.stdoutBytes);
    assert.deepEqual(compareTrees(src, tarOut, { modes: true, owners: true, mtimeMs: 0, hardlinks: true }), []);
    assert.equal(await sha256(img), before, 'the image is unchanged');
  });

  test('genisoimage -R -J: directories deeper than 8 levels relocated (CL/RE) read where they belong; rr_moved shown as xorriso shows it', async (t) => {
    if (!needPeers(t, 'genisoimage', 'xorriso')) return;
    const img = join(dir, 'geniso-rr.iso');
    sh('genisoimage', ['-quiet', '-R', '-J', '-o', img, src]);
    const ours = await withFs(img, (fs) => walkOurs(fs));
    assert.ok(ours.has('/a/b/c/d/e/f/g/h/i/deep.txt'));
    assert.equal(ours.get('/rr_moved')?.type, 'directory');
    assertAgreesWithXorriso(ours, img);
    // genisoimage keeps everything but what it cannot: rr_moved is extra.
    assertEqualsSource(ours, src, ['/rr_moved']);
  });

  test('xorrisofs -r: rationalised modes and owners, as xorriso lists them', async (t) => {
    if (!needPeers(t, 'xorrisofs', 'xorriso')) return;
    const img = join(dir, 'rational.iso');
    sh('xorrisofs', ['-quiet', '-r', '-o', img, src]);
    const ours = await withFs(img, (fs) => walkOurs(fs, false));
    assertAgreesWithXorriso(ours, img);
    assert.equal(ours.get('/run.sh')?.uid, 0);
    assert.equal(ours.get('/readme.txt')?.perms, 0o444);
  });

  test('Joliet without Rock Ridge (-joliet-long): UCS-2 names up to 103 characters, modes as Linux shows them; isoinfo -J and xorriso agree', async (t) => {
    if (!needPeers(t, 'genisoimage', 'isoinfo', 'xorriso')) return;
    const jsrc = join(dir, 'jsrc');
    mkdirSync(join(jsrc, 'Sub Dir'), { recursive: true });
    const long103 = 'J'.repeat(99) + '.txt';
    writeFileSync(join(jsrc, long103), 'joliet long');
    writeFileSync(join(jsrc, UNICODE_NAME), 'unicode');
    writeFileSync(join(jsrc, 'Sub Dir', 'MixedCase.Tar.GZ'), noise(70000, 3));
    writeFileSync(join(jsrc, 'trailing.'), 'dot');
    const img = join(dir, 'joliet.iso');
    sh('genisoimage', ['-quiet', '-J', '-joliet-long', '-o', img, jsrc]);
    const ours = await withFs(img, async (fs) => {
      assert.equal((fs.reader as unknown as { tree: string }).tree, 'joliet');
      return walkOurs(fs);
    });
    assert.deepEqual([...ours.keys()].sort(), ['/', `/${UNICODE_NAME}`, `/${long103}`, '/Sub Dir', '/Sub Dir/MixedCase.Tar.GZ', '/trailing'].sort());
    assert.equal(ours.get(`/${long103}`)?.read?.toString(), 'joliet long');
    assert.ok(ours.get('/Sub Dir/MixedCase.Tar.GZ')?.read?.equals(noise(70000, 3)));
    for (const [p, w] of ours) assert.equal(w.perms, 0o555, `${p}: r-x for all, as Linux shows ISO files without Rock Ridge`);
    // isoinfo prints Joliet names as bytes of its own choosing: compare the ASCII ones, and sizes.
    const info = isoinfoListing(img, '-J');
    for (const [p, i] of info) {
      if (!/^[\x20-\x7e]*$/.test(p)) continue;
      const mine = ours.get(p.replace(/\.$/, ''));
      assert.ok(mine, `${p} from isoinfo -J is ours too (Linux drops a trailing dot)`);
      if (i.type === 'file') assert.equal(mine.size, i.size);
    }
    const x = xorrisoLsdl(img);
    assert.equal(x.size, ours.size);
    for (const [p, w] of x) {
      const mine = ours.get(p.replace(/\.$/, ''));
      assert.ok(mine, `${p} from xorriso is ours too`);
      assert.equal(mine.perms, w.perms);
      if (w.type === 'file') assert.equal(mine.size, w.size);
    }
    // Without -joliet-long, Joliet names are cut at 64 characters, and so are ours.
    const short = join(dir, 'joliet64.iso');
    sh('genisoimage', ['-quiet', '-J', '-o', short, jsrc]);
    const names = await withFs(short, async (fs) => (await fs.readdir('/')).map((e) => e.name));
    assert.ok(names.includes(long103.slice(0, 64)), names.join(', '));
  });

  test('plain ISO-9660 names as Linux maps them (lower case, ";1" dropped); sizes and extents as isoinfo lists them', async (t) => {
    if (!needPeers(t, 'genisoimage', 'isoinfo')) return;
    const img = join(dir, 'plain.iso');
    sh('genisoimage', ['-quiet', '-o', img, join(src, 'docs')]);
    const ours = await withFs(img, async (fs) => {
      assert.equal((fs.reader as unknown as { tree: string }).tree, 'iso');
      return walkOurs(fs);
    });
    const info = isoinfoListing(img);
    const expected = [...info.keys()].map((p) => p.replace(/\.?;1$/, '').toLowerCase());
    assert.deepEqual([...ours.keys()].filter((p) => p !== '/').sort(), expected.sort());
    assert.equal(ours.get('/nested/note.md')?.read?.toString(), '# note\n');
    assert.equal(ours.get('/hardlink.txt')?.perms, 0o555);
  });

  test('El Torito: boot images listed under /[BOOT] with 7-Zip\'s names and sizes, and read as 7-Zip extracts them', async (t) => {
    if (!needPeers(t, 'xorrisofs', '7zz', 'sfdisk')) return;
    const bsrc = join(dir, 'bsrc');
    mkdirSync(bsrc);
    writeFileSync(join(bsrc, 'boot.img'), noise(5000, 11));
    writeFileSync(join(bsrc, 'efi.img'), noise(9000, 12));
    const img = join(dir, 'boot.iso');
    sh('xorrisofs', ['-quiet', '-R', '-J', '-b', 'boot.img', '-no-emul-boot', '-boot-load-size', '4', '-eltorito-alt-boot', '-e', 'efi.img', '-no-emul-boot', '-o', img, bsrc]);
    const seven = sh('7zz', ['l', '-slt', img]);
    const sevenBoot = [...seven.matchAll(/Path = \[BOOT\]\/(.*)\nFolder = -\nSize = (\d+)/g)].map((m) => [m[1], Number(m[2])]);
    assert.equal(sevenBoot.length, 2);
    const x = join(dir, 'boot-7z');
    sh('7zz', ['x', '-y', `-o${x}`, img, '[BOOT]']);
    await withFs(img, async (fs) => {
      const entries = await fs.readdir('/[BOOT]');
      assert.deepEqual(entries.map((e) => e.name).sort(), sevenBoot.map((s) => s[0]).sort());
      for (const [name, size] of sevenBoot) {
        const st = await fs.stat(`/[BOOT]/${name}`);
        assert.equal(st.size, size);
        const f = await fs.open(`/[BOOT]/${name}`);
        const buf = Buffer.alloc(st.size);
        await f.read(buf, 0);
        assert.ok(buf.equals(readFileSync(join(x, '[BOOT]', name as string))), `${name}: bytes as 7-Zip extracts them`);
      }
      // The first image is 4 virtual sectors of boot.img, as the catalog says.
      const first = Buffer.alloc(2048);
      await (await fs.open('/[BOOT]/1-Boot-NoEmul.img')).read(first, 0);
      assert.ok(first.equals(noise(5000, 11).subarray(0, 2048)));
    });
    // Floppy and hard-disk emulation: the sizes 7-Zip gives them (a whole floppy; the catalog's sector count).
    writeFileSync(join(bsrc, 'floppy.img'), noise(1440 * 1024, 13));
    sh('truncate', ['-s', '1M', join(bsrc, 'disk.img')]);
    sh('sfdisk', ['-q', join(bsrc, 'disk.img')], Buffer.from('label: dos\nstart=63, size=1000\n'));
    for (const [opts, name] of [[['-b', 'floppy.img'], 'Boot-1.44M.img'], [['-b', 'disk.img', '-hard-disk-boot'], 'Boot-HardDisk.img']] as const) {
      const emu = join(dir, `${name}.iso`);
      sh('xorrisofs', ['-quiet', ...opts, '-o', emu, bsrc]);
      const size = Number(/Path = \[BOOT\]\/(.*)\nFolder = -\nSize = (\d+)/.exec(sh('7zz', ['l', '-slt', emu]))?.[2]);
      await withFs(emu, async (fs) => {
        assert.deepEqual((await fs.readdir('/[BOOT]')).map((e) => e.name), [name]);
        assert.equal((await fs.stat(`/[BOOT]/${name}`)).size, size, `${name}: size as 7-Zip gives it`);
      });
    }
    // A catalog whose validation entry does not sum to zero is reported, not trusted.
    const catSector = readFileSync(img).readUInt32LE(17 * 2048 + 71);
    const bad = join(dir, 'badcat.iso');
    const bytes = readFileSync(img);
    bytes[catSector * 2048 + 28] ^= 0xff;
    writeFileSync(bad, bytes);
    await withFs(bad, async (fs) => {
      assert.ok(!(await fs.readdir('/')).some((e) => e.name === '[BOOT]'));
      assert.match(fs.warnings.join('\n'), /validation entry: checksum mismatch/);
    });
  });

  test('inside a VHDX, and in a GPT partition of one, the tree reads the same', async (t) => {
    if (!needPeers(t, 'xorrisofs', 'qemu-img', 'sfdisk')) return;
    const img = join(dir, 'v.iso');
    sh('xorrisofs', ['-quiet', '-R', '-J', '-o', img, src]);
    const raw = await withFs(img, (fs) => walkOurs(fs));
    const vhdx = join(dir, 'v.vhdx');
    sh('qemu-img', ['convert', '-O', 'vhdx', img, vhdx]);
    assert.deepEqual(await withFs(vhdx, (fs) => walkOurs(fs)), raw);

    const disk = join(dir, 'gpt.raw');
    const isoSize = statSync(img).size;
    const start = 2048;
    sh('truncate', ['-s', String((start + Math.ceil(isoSize / 512) + 2048) * 512), disk]);
    sh('sfdisk', ['-q', disk], Buffer.from(`label: gpt\nstart=${start}, size=${Math.ceil(isoSize / 512)}\n`));
    const fd = openSync(disk, 'r+');
    writeSync(fd, readFileSync(img), 0, isoSize, start * 512);
    closeSync(fd);
    const gptVhdx = join(dir, 'gpt.vhdx');
    sh('qemu-img', ['convert', '-O', 'vhdx', disk, gptVhdx]);
    assert.deepEqual(await withFs(gptVhdx, (fs) => walkOurs(fs), 1), raw);
    const r = vdisk(['cat', '-P', '1', gptVhdx, '/data.bin']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdoutBytes.equals(readFileSync(join(src, 'data.bin'))));
  });

  test('vdisk ls -l agrees with xorriso -find -exec lsdl', async (t) => {
    if (!needPeers(t, 'xorrisofs', 'xorriso')) return;
    const img = join(dir, 'ls.iso');
    sh('xorrisofs', ['-quiet', '-R', '-o', img, src]);
    const r = vdisk(['ls', '-R', '--output', 'json', img, '/']);
    assert.equal(r.code, 0, r.stderr);
    const entries = JSON.parse(r.stdout) as { path: string; 'mode-string': string; uid: number; gid: number; size: number; target?: string; type: string }[];
    const theirs = xorrisoLsdl(img);
    theirs.delete('/');
    assert.deepEqual(entries.map((e) => e.path).sort(), [...theirs.keys()].sort());
    const text = vdisk(['ls', '-l', img, '/']).stdout;
    for (const e of entries) {
      const x = theirs.get(e.path);
      assert.ok(x);
      assert.equal(e.uid, x.uid);
      assert.equal(e.gid, x.gid);
      assert.equal(e.target, x.target);
      if (e.type === 'file') assert.equal(e.size, x.size);
      if (!e.path.slice(1).includes('/')) assert.match(text, new RegExp(`^${e['mode-string']} .* ${e.path.slice(1).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}( -> .*)?$`, 'm'));
    }
  });

  test('freeExtents: no range holds a file extent xorriso reports; the padding genisoimage adds is free', async (t) => {
    if (!needPeers(t, 'genisoimage', 'xorriso')) return;
    const img = join(dir, 'free.iso');
    sh('genisoimage', ['-quiet', '-R', '-J', '-o', img, src]);
    const free: { offset: number; length: number }[] = [];
    await withFs(img, async (fs) => {
      for await (const r of fs.freeExtents()) free.push(r);
    });
    const lba = sh('xorriso', ['-indev', img, '-find', '/', '-exec', 'report_lba']);
    let files = 0;
    for (const m of lba.matchAll(/File data lba:\s*\d+\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,/g)) {
      const at = Number(m[1]) * 2048;
      const len = Number(m[3]);
      files++;
      for (const f of free) assert.ok(at + len <= f.offset || at >= f.offset + f.length, `file data at ${at} (+${len}) is not in free range ${f.offset}+${f.length}`);
    }
    assert.ok(files >= 5, lba);
    for (let i = 1; i < free.length; i++) assert.ok(free[i].offset > free[i - 1].offset + free[i - 1].length, 'merged and in order');
    // genisoimage pads the image with 150 sectors that nothing uses.
    const last = free[free.length - 1];
    assert.equal(last.offset + last.length, statSync(img).size);
    assert.ok(last.length >= 150 * 2048);
  });

  test('hidden and associated files are listed and flagged; an interleaved file is refused with one line; the rest still reads', async (t) => {
    if (!needPeers(t, 'genisoimage')) return;
    const hsrc = join(dir, 'hsrc');
    mkdirSync(hsrc);
    writeFileSync(join(hsrc, 'secret.txt'), 'hidden but there');
    writeFileSync(join(hsrc, 'inter.bin'), noise(8192, 5));
    writeFileSync(join(hsrc, 'plain.txt'), 'plain');
    const img = join(dir, 'hidden.iso');
    sh('genisoimage', ['-quiet', '-R', '-hidden', 'secret.txt', '-o', img, hsrc]);
    // Mark inter.bin interleaved (file unit size 1, gap 1: ECMA-119 9.1.7, 9.1.8) in its directory record.
    const bytes = readFileSync(img);
    const at = bytes.indexOf(Buffer.from('INTER.BIN;1'));
    assert.ok(at > 0);
    bytes[at - 33 + 26] = 1;
    bytes[at - 33 + 27] = 1;
    // And plain.txt an associated file (9.1.6 bit 2): listed, flagged, still readable.
    bytes[bytes.indexOf(Buffer.from('PLAIN.TXT;1')) - 33 + 25] |= 0x04;
    writeFileSync(img, bytes);
    await withFs(img, async (fs) => {
      assert.deepEqual((await fs.readdir('/')).map((e) => e.name).sort(), ['inter.bin', 'plain.txt', 'secret.txt']);
      assert.deepEqual((await fs.stat('/secret.txt')).flags, ['hidden']);
      const f = await fs.open('/secret.txt');
      const b = Buffer.alloc(16);
      await f.read(b, 0);
      assert.equal(b.toString(), 'hidden but there');
      assert.ok((await fs.stat('/inter.bin')).flags?.includes('interleaved'));
      assert.deepEqual((await fs.stat('/plain.txt')).flags, ['associated']);
      await assert.rejects(fs.open('/inter.bin'), (e: unknown) => e instanceof VdiskError && e.code === 'UNSUPPORTED' && /interleaved/.test(e.message) && !e.message.includes('\n'));
    });
    const r = vdisk(['cat', img, '/inter.bin']);
    assert.equal(r.code === 0, false);
    assert.match(r.stderr.trim(), /^vdisk: .*interleaved file \(file unit size 1, gap 1 blocks\) is not supported$/);
  });

  test('names from Rock Ridge NM beyond 64 characters and symlinks continued in CE areas', async (t) => {
    if (!needPeers(t, 'xorrisofs')) return;
    const img = join(dir, 'names.iso');
    sh('xorrisofs', ['-quiet', '-R', '-o', img, src]);
    await withFs(img, async (fs) => {
      assert.equal((await fs.stat(`/${LONG_NAME}`)).size, 5);
      assert.equal(await fs.readlink('/longlink'), Array.from({ length: 20 }, (_, i) => `part${String(i).padStart(5, '0')}`).join('/'));
      assert.equal(await fs.readlink('/docs/dots'), './nested/../nested/note.md');
    });
  });

  test('zisofs-compressed files (xorriso --zisofs) read inflated, zero blocks as holes; sizes as xorriso shows them; vdisk get equals the source', async (t) => {
    if (!needPeers(t, 'xorriso')) return;
    const zsrc = join(dir, 'zsrc');
    mkdirSync(zsrc);
    writeFileSync(join(zsrc, 'text.txt'), Buffer.from('the quick brown fox '.repeat(20000)));
    writeFileSync(join(zsrc, 'mixed.bin'), Buffer.concat([noise(70000, 9), Buffer.alloc(200000), noise(5000, 10)]));
    writeFileSync(join(zsrc, 'tiny'), 'tiny');
    const img = join(dir, 'zisofs.iso');
    sh('xorriso', ['-no_rc', '-outdev', `stdio:${img}`, '-map', zsrc, '/', '-set_filter_r', '--zisofs', '/', '--', '-commit']);
    const ours = await withFs(img, (fs) => walkOurs(fs));
    const x = xorrisoLsdl(img);
    for (const name of ['text.txt', 'mixed.bin']) {
      const o = ours.get(`/${name}`) as Walked;
      assert.ok(o.flags?.includes('zisofs'), `${name} is stored compressed`);
      assert.equal(o.size, x.get(`/${name}`)?.size);
      assert.ok(o.read?.equals(readFileSync(join(zsrc, name))), `${name}: inflated contents`);
    }
    await withFs(img, async (fs) => {
      const f = await fs.open('/mixed.bin');
      const ranges = await f.dataRanges?.();
      assert.ok(ranges && ranges.length === 2, JSON.stringify(ranges));
    });
    const out = join(dir, 'get-zisofs');
    const r = vdisk(['get', img, '/', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(compareTrees(zsrc, out), []);
    // A block pointer past the stored data: one line, CORRUPT.
    const bytes = readFileSync(img);
    const at = bytes.indexOf(Buffer.from([0x37, 0xe4, 0x53, 0x96, 0xc9, 0xdb, 0xd6, 0x07]));
    bytes.writeUInt32LE(0x7fffffff, at + 16 + 4);
    const bad = join(dir, 'zisofs-bad.iso');
    writeFileSync(bad, bytes);
    const rb = vdisk(['cat', bad, '/mixed.bin']);
    const rc = rb.code !== 0 ? rb : vdisk(['cat', bad, '/text.txt']);
    assert.notEqual(rc.code, 0);
    assert.match(rc.stderr, /^vdisk: .*zisofs block pointer 1 \(2147483647\) is out of order or past the stored \d+ bytes\n$/);
  });

  test('device nodes: Rock Ridge PN major and minor as the source has them, from genisoimage and xorriso', async (t) => {
    if (!needPeers(t, 'genisoimage', 'xorrisofs', 'mknod', 'stat')) return;
    const dsrc = join(dir, 'dsrc');
    mkdirSync(dsrc);
    sh('mknod', [join(dsrc, 'null'), 'c', '1', '3']);
    sh('mknod', [join(dsrc, 'wide'), 'b', '259', '65540']);
    for (const [tool, args] of [['genisoimage', ['-quiet', '-R']], ['xorrisofs', ['-quiet', '-R']]] as const) {
      const img = join(dir, `dev-${tool}.iso`);
      sh(tool, [...args, '-o', img, dsrc]);
      await withFs(img, async (fs) => {
        for (const [name, type] of [['null', 'char'], ['wide', 'block']]) {
          const [major, minor] = sh('stat', ['-c', '%Hr %Lr', join(dsrc, name)]).trim().split(' ').map(Number);
          const st = await fs.lstat(`/${name}`);
          assert.equal(st.type, type, `${tool} ${name}`);
          assert.deepEqual(st.rdev, { major, minor }, `${tool} ${name}`);
        }
      });
    }
  });

  test('Rock Ridge wins over Joliet when the root announces it (ER), as on Linux; SUSP without that ER yields to Joliet', async (t) => {
    if (!needPeers(t, 'genisoimage')) return;
    const img = join(dir, 'er.iso');
    sh('genisoimage', ['-quiet', '-R', '-J', '-o', img, join(src, 'docs')]);
    const bytes = readFileSync(img);
    // genisoimage puts the root's ER in a continuation area: "ER", length, version, four lengths, then the identifier.
    const er = bytes.indexOf(Buffer.from('RRIP_1991A')) - 8;
    assert.equal(bytes.toString('latin1', er, er + 2), 'ER', 'genisoimage announces Rock Ridge');
    assert.equal(await withFs(img, async (fs) => (fs.reader as unknown as { tree: string }).tree), 'rockridge');
    bytes.write('XX', er, 'latin1');
    const unannounced = join(dir, 'no-er.iso');
    writeFileSync(unannounced, bytes);
    await withFs(unannounced, async (fs) => {
      assert.equal((fs.reader as unknown as { tree: string }).tree, 'joliet');
      assert.equal((await fs.stat('/hardlink.txt')).mode & 0o777, 0o555);
    });
  });

  test('a multi-extent file made by hand from two records reads as xorriso and 7-Zip read it (the fast companion of the 4 GiB test)', async (t) => {
    if (!needPeers(t, 'genisoimage', 'xorriso', '7zz')) return;
    const msrc = join(dir, 'msrc');
    mkdirSync(msrc);
    writeFileSync(join(msrc, 'a.bin'), noise(4096, 21));
    writeFileSync(join(msrc, 'b.bin'), noise(3000, 22));
    const plain = join(dir, 'two.iso');
    sh('genisoimage', ['-quiet', '-o', plain, msrc]);
    // A.BIN's record says more follows (ECMA-119 9.1.6 bit 7); B.BIN's record takes its name: one file, two extents.
    const bytes = readFileSync(plain);
    const a = bytes.indexOf(Buffer.from('A.BIN;1'));
    const b = bytes.indexOf(Buffer.from('B.BIN;1'));
    bytes[a - 33 + 25] |= 0x80;
    bytes.write('A.BIN;1', b, 'latin1');
    const img = join(dir, 'multi.iso');
    writeFileSync(img, bytes);
    const out = join(dir, 'multi-x');
    sh('xorriso', ['-osirrox', 'on', '-indev', img, '-extract', '/A.BIN', out]);
    const theirs = readFileSync(out);
    assert.equal(theirs.length, 7096);
    assert.match(sh('7zz', ['l', img]), /\s7096\s+7096\s+A\.BIN/);
    const ours = await withFs(img, (fs) => walkOurs(fs));
    assert.deepEqual([...ours.keys()], ['/', '/a.bin']);
    assert.ok(ours.get('/a.bin')?.read?.equals(theirs));
    assert.deepEqual(ours.get('/a.bin')?.flags, ['multi-extent']);
  });
});
