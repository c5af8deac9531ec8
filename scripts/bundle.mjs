#!/usr/bin/env node
// Bundles the compiled CLI (dist/commands/cli.js) into dist/cli/: one file for start-up instead of a
// few dozen module resolutions (measured: 35 ms less per command, a sixth of `vdisk check`), with code
// splitting so that what a command imports lazily (chalk, a subcommand) stays out of the others' way.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist', 'cli');
rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: { vdisk: join(root, 'dist', 'commands', 'cli.js') },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  outdir,
  // The native CRC-32C binding is loaded from node_modules at run time.
  external: ['@node-rs/crc32', 'fs-native-extensions'],
  // commander is CommonJS and requires Node built-ins; ESM output needs a require to give it.
  banner: { js: "import { createRequire as __vdiskCreateRequire } from 'node:module'; const require = __vdiskCreateRequire(import.meta.url);" },
  // The version comes from package.json at build time: a bundle may run where that file is not.
  define: { VDISK_VERSION: JSON.stringify((await import(join(root, 'package.json'), { with: { type: 'json' } })).default.version) },
  logLevel: 'warning',
});
