import { Command, CommanderError, Option } from 'commander';
import { version } from './version.js';
import { VdiskError, type ErrorCode } from '../src/errors.js';

// Nothing here may import chalk (commands/colour.ts): loading it touches process.stdout, which makes
// fd 1 non-blocking and halves the speed of `vdisk read` into a pipe. Human renderers import it.

/** The one place where failures become exit statuses; `check` returns its own codes as results. */
const EXIT_CODES: Record<ErrorCode, number> = {
  USAGE: 1,
  NOT_FOUND: 1,
  NOT_A_FILE: 1,
  IO: 1,
  CORRUPT: 1,
  TRUNCATED: 1,
  UNSUPPORTED: 1,
  RANGE: 1,
  LOCKED: 1,
};

function fail(message: string, code: number): never {
  process.stderr.write(`vdisk: ${message}\n`);
  process.exit(code);
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function build(setExit: (code: number) => void): Command {
  const program = new Command('vdisk')
    .description('inspect, read, write, convert and repair virtual disk images (VHDX, raw); partitions, file systems and the files inside them')
    .version(version(), '-V, --version')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      // Commander's own usage errors arrive here; reduce them to our one-line form.
      writeErr: (s) => {
        const line = s.trim().split('\n')[0].replace(/^error: /, '');
        if (line) process.stderr.write(`vdisk: ${line}\n`);
      },
    });
  const formatOpt = () => new Option('-f, --format <fmt>', 'image format (`vdisk formats` lists them); probed when absent');
  const outputOpt = () => new Option('--output <kind>', 'human or json').default('human');
  const shareOpt = () =>
    new Option('-U, --force-share', 'look without the shared lock, even while another process writes the image (as qemu-img -U)');

  program
    .command('info')
    .description('format, sizes and the format’s details')
    .argument('<image>')
    .addOption(formatOpt())
    .addOption(shareOpt())
    .addOption(outputOpt())
    .option('-q, --quiet', 'print nothing but errors')
    .action(async (image: string, opts) => {
      const { runInfo } = await import('./info.js');
      setExit(await runInfo(image, opts));
    });

  program
    .command('create')
    .description('create a VHDX (dynamic or fixed) or a sparse raw image (raw by default for a name ending in .img or .raw)')
    .argument('[image]')
    .argument('[size]', 'virtual size: bytes, or with k, M, G, T')
    .addOption(new Option('-f, --format <fmt>', 'the format (default: by the name\'s ending, raw for *.img and *.raw, else vhdx)'))
    .option('-o, --options <list>', 'format options key=value,... (repeatable; -o help lists them)', collect, [])
    .option('-b, --backing-file <parent>', 'make a differencing image (or one backed by PARENT), of PARENT\'s size unless SIZE is given')
    .option('-F, --backing-format <fmt>', 'the backing image\'s format (probed when absent)')
    .option('-q, --quiet', 'print nothing but errors')
    .action(async (image: string | undefined, size: string | undefined, opts) => {
      const { runCreate } = await import('./create.js');
      setExit(await runCreate(image, size, opts));
    });

  program
    .command('read')
    .description('copy the virtual disk’s bytes to OUTPUT (created sparse) or stdout')
    .argument('<image>')
    .argument('[output]', 'output file; stdout when absent or -')
    .addOption(formatOpt())
    .addOption(shareOpt())
    .option('--offset <n>', 'start at this virtual offset')
    .option('--length <n>', 'copy this many bytes')
    .option('-q, --quiet', 'print nothing but errors')
    .option('-p, --progress', 'show progress on stderr (terminal only)')
    .action(async (image: string, output: string | undefined, opts) => {
      const { runRead } = await import('./read.js');
      setExit(await runRead(image, output, opts));
    });

  program
    .command('compare')
    .description('whether two disks hold the same bytes, whatever their formats (as qemu-img compare: exit 0 same, 1 different, 2 unreadable)')
    .argument('<image1>')
    .argument('<image2>')
    .addOption(new Option('-f, --format <fmt>', 'the first image’s format; probed when absent'))
    .addOption(new Option('-F, --second-format <fmt>', 'the second image’s format; probed when absent'))
    .addOption(shareOpt())
    .option('-s, --strict', 'images of different sizes are different, even if the larger one ends in zeros')
    .option('-q, --quiet', 'print nothing but errors')
    .option('-p, --progress', 'show progress on stderr (terminal only)')
    .action(async (first: string, second: string, opts) => {
      const { runCompare } = await import('./compare.js');
      setExit(await runCompare(first, second, opts));
    });

  program
    .command('formats')
    .description('the image formats vdisk knows, and what it does with each (read, create, check)')
    .addOption(outputOpt())
    .action(async (opts) => {
      const { runFormats } = await import('./formats.js');
      setExit(await runFormats(opts));
    });

  program
    .command('map')
    .description('where each range of the virtual disk is stored: data, zeros, unallocated, or a parent (as qemu-img map)')
    .argument('<image>')
    .addOption(formatOpt())
    .addOption(shareOpt())
    .addOption(outputOpt())
    .option('-q, --quiet', 'print nothing but errors')
    .action(async (image: string, opts) => {
      const { runMap } = await import('./map.js');
      setExit(await runMap(image, opts));
    });

  program
    .command('resize')
    .description('change the virtual size of a VHDX or raw image (as qemu-img resize); shrinking needs --shrink')
    .argument('<image>')
    .argument('<size>', 'new size, or +SIZE / -SIZE to grow or shrink by it (bytes, or with k, M, G, T)')
    .addOption(formatOpt())
    .option('--shrink', 'allow a smaller size (refused while a partition, file system or data lies past it)')
    .option('-q, --quiet', 'print nothing but errors')
    .allowUnknownOption() // `-1G` is a size, as in qemu-img resize; runResize refuses other strays
    .action(async (image: string, size: string, opts) => {
      const { runResize } = await import('./resize.js');
      setExit(await runResize(image, size, opts));
    });

  program
    .command('compact')
    .description('give back file space (as Optimize-VHD): drop blocks of zeros and blocks in the file systems\' free space, move the rest down, truncate')
    .argument('<image>')
    .addOption(formatOpt())
    .option('--zeros-only', 'drop only blocks that read as zeros; leave the file systems\' free space alone')
    .option('--dry-run', 'report what would be given back, changing nothing')
    .option('-p, --progress', 'show progress on stderr (terminal only)')
    .addOption(outputOpt())
    .option('-q, --quiet', 'print nothing but errors')
    .action(async (image: string, opts) => {
      const { runCompact } = await import('./compact.js');
      setExit(await runCompact(image, opts));
    });

  program
    .command('commit')
    .description('merge a differencing image into its parent (as qemu-img commit, Merge-VHD); the child is emptied unless -d')
    .argument('<image>')
    .addOption(formatOpt())
    .option('-d', 'leave the child\'s data in place (do not empty it)')
    .option('-p, --progress', 'show progress on stderr (terminal only)')
    .option('-q, --quiet', 'print nothing but errors')
    .action(async (image: string, opts) => {
      const { runCommit } = await import('./commit.js');
      setExit(await runCommit(image, opts));
    });

  program
    .command('rebase')
    .description('give a differencing image a new parent (as qemu-img rebase): safe mode keeps what the child reads, -u only rewrites the reference')
    .argument('<image>')
    .addOption(formatOpt())
    .option('-b, --backing-file <parent>', 'the new parent')
    .option('-F, --backing-format <fmt>', 'the new parent\'s format (probed when absent)')
    .option('-u, --unsafe', 'only point the child at the new parent, copying nothing')
    .option('-p, --progress', 'show progress on stderr (terminal only)')
    .option('-q, --quiet', 'print nothing but errors')
    .action(async (image: string, opts) => {
      const { runRebase } = await import('./rebase.js');
      setExit(await runRebase(image, opts));
    });

  program
    .command('partitions')
    .description('the partition table: MBR with extended chains, GPT (backup used when the primary is bad), BSD labels')
    .argument('<image>')
    .addOption(formatOpt())
    .addOption(shareOpt())
    .addOption(outputOpt())
    .option('-q, --quiet', 'print nothing but errors')
    .action(async (image: string, opts) => {
      const { runPartitions } = await import('./partitions.js');
      setExit(await runPartitions(image, opts));
    });

  program
    .command('mount-detect')
    .description('the file system of the disk or of each partition, named as blkid names it')
    .argument('<image>')
    .addOption(formatOpt())
    .addOption(shareOpt())
    .addOption(outputOpt())
    .option('-q, --quiet', 'print nothing but errors')
    .action(async (image: string, opts) => {
      const { runMountDetect } = await import('./mount-detect.js');
      setExit(await runMountDetect(image, opts));
    });

  program
    .command('check')
    .description('find inconsistencies; -r leaks|all repairs them (exit codes as qemu-img check)')
    .argument('<image>')
    .addOption(formatOpt())
    .addOption(shareOpt())
    .addOption(outputOpt())
    .option('-r, --repair <what>', 'leaks or all')
    .option('-q, --quiet', 'print nothing but errors')
    .option('-p, --progress', 'show progress on stderr (terminal only)')
    .action(async (image: string, opts) => {
      const { runCheck } = await import('./check.js');
      setExit(await runCheck(image, opts));
    });

  program
    .command('write')
    .description('write bytes from INPUT (a file, or stdin) into the virtual disk')
    .argument('<image>')
    .argument('[input]', 'input file; stdin when absent or -')
    .addOption(formatOpt())
    .option('--offset <n>', 'virtual offset to write at')
    .option('-t, --cache <mode>', 'writeback (default: flushes keep the image crash-safe) or unsafe (no flushes, as qemu-img convert defaults to)')
    .option('-q, --quiet', 'print nothing but errors')
    .option('-p, --progress', 'show progress on stderr (terminal only)')
    .action(async (image: string, input: string | undefined, opts) => {
      const { runWrite } = await import('./write.js');
      setExit(await runWrite(image, input, opts));
    });

  program
    .command('convert')
    .description('copy a disk into a new image of any format (as qemu-img convert)')
    .argument('[source]')
    .argument('[output]')
    .addOption(formatOpt())
    .addOption(shareOpt())
    .addOption(new Option('-O, --output-format <fmt>', 'the new image’s format: raw (default, as qemu-img) or any format `vdisk formats` lists as creatable'))
    .option('-o, --options <list>', 'the new image\'s format options key=value,... as for create (repeatable; -o help lists them)', collect, [])
    .option('-t, --cache <mode>', 'writeback (default: every flush, durable when done) or unsafe (no flushes, as qemu-img convert defaults to)')
    .option('-c, --compress', 'compressed output, as qemu-img -c (formats with a compressed form)')
    .option('-q, --quiet', 'print nothing but errors')
    .option('-p, --progress', 'show progress on stderr (terminal only)')
    .action(async (source: string | undefined, output: string | undefined, opts) => {
      const { runConvert } = await import('./convert.js');
      setExit(await runConvert(source, output, opts));
    });

  program
    .command('measure')
    .description('the file size a new image needs to hold SOURCE, or a disk of --size, and when fully allocated (as qemu-img measure)')
    .argument('[source]')
    .addOption(formatOpt())
    .addOption(shareOpt())
    .addOption(new Option('-O, --output-format <fmt>', 'the new image’s format (default raw, as qemu-img)'))
    .option('-o, --options <list>', 'the new image\'s format options key=value,... as for create (repeatable; -o help lists them)', collect, [])
    .option('--size <n>', 'measure an empty disk of this size instead of SOURCE')
    .addOption(outputOpt())
    .action(async (source: string | undefined, opts) => {
      const { runMeasure } = await import('./measure.js');
      setExit(await runMeasure(source, opts));
    });

  const partitionOpt = () => new Option('-P, --partition <n>', 'the partition, numbered as `vdisk partitions` lists them (default: the only file system)');

  program
    .command('ls')
    .description('list a directory of a file system inside the image, as ls does')
    .argument('<image>')
    .argument('[path]', 'directory or file inside the file system (default /)')
    .addOption(formatOpt())
    .addOption(partitionOpt())
    .addOption(shareOpt())
    .option('-l, --long', 'long listing: mode, links, owner, group, size, mtime, symlink target')
    .option('-R, --recursive', 'list subdirectories too')
    .option('-a, --all', 'include names starting with a dot')
    .addOption(outputOpt())
    .option('-q, --quiet', 'print no warnings')
    .action(async (image: string, path: string | undefined, opts) => {
      const { runLs } = await import('./ls.js');
      setExit(await runLs(image, path, opts));
    });

  program
    .command('cat')
    .description('a file’s bytes to stdout (NTFS streams as FILE:STREAM)')
    .argument('<image>')
    .argument('<path>')
    .addOption(formatOpt())
    .addOption(partitionOpt())
    .addOption(shareOpt())
    .option('-q, --quiet', 'print no warnings')
    .action(async (image: string, path: string, opts) => {
      const { runCat } = await import('./cat.js');
      setExit(await runCat(image, path, opts));
    });

  program
    .command('get')
    .description('copy a file or a tree out of the image to DEST (as virt-copy-out): times, modes, symlinks, hard links, holes kept')
    .argument('<image>')
    .argument('<path>')
    .argument('[dest]', 'an existing directory to copy into, or a new name (default .)')
    .addOption(formatOpt())
    .addOption(partitionOpt())
    .addOption(shareOpt())
    .option('-q, --quiet', 'print no warnings')
    .option('-p, --progress', 'show progress on stderr (terminal only)')
    .action(async (image: string, path: string, dest: string | undefined, opts) => {
      const { runGet } = await import('./get.js');
      setExit(await runGet(image, path, dest, opts));
    });

  program
    .command('tar')
    .description('a tree of the file system as a tar stream on stdout (as virt-tar-out)')
    .argument('<image>')
    .argument('[path]', 'the tree’s top (default /)')
    .addOption(formatOpt())
    .addOption(partitionOpt())
    .addOption(shareOpt())
    .option('-q, --quiet', 'print no warnings')
    .option('-p, --progress', 'show progress on stderr (terminal only)')
    .action(async (image: string, path: string | undefined, opts) => {
      const { runTar } = await import('./tar.js');
      setExit(await runTar(image, path, opts));
    });

  return program;
}

export async function main(argv: string[]): Promise<void> {
  // What another vdisk or ps shows when this process holds an image ("in use by ... (pid N, vdisk)").
  process.title = 'vdisk';
  let exitCode = 0;
  try {
    const program = build((c) => (exitCode = c));
    if (argv.length <= 2) {
      // Nothing asked: the command list, as a reminder, with a usage error's exit code (qemu-img's 1).
      process.stdout.write(program.helpInformation());
      process.exit(1);
    }
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version end with exitCode 0 and have already printed; usage errors were printed above.
      process.exit(e.exitCode === 0 ? 0 : 1);
    }
    if (e instanceof VdiskError) {
      if (e.code === 'IO' && /closed the pipe/.test(e.message)) process.exit(0);
      fail(e.message, EXIT_CODES[e.code] ?? 1);
    }
    const detail = e instanceof Error ? e.message : String(e);
    if (process.env.VDISK_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    fail(`internal error: ${detail}`, 1);
  }
  process.exitCode = exitCode;
}
