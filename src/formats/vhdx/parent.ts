import { dirname, isAbsolute, join, basename, relative, resolve, sep } from 'node:path';
import { PARENT_LOCATOR_VHDX } from './constants.js';
import { existsSync } from 'node:fs';
import { VdiskError } from '../../errors.js';
import type { ParentLocator } from './metadata.js';

/**
 * Where a differencing image's parent may be, in the order worth trying: the relative path (the
 * one that survives copying a chain of files together), the absolute paths, then the parent's file
 * name beside the child. Windows separators are turned into ours.
 */
export function parentCandidates(childPath: string, locator: ParentLocator): string[] {
  const dir = dirname(childPath);
  const out: string[] = [];
  const add = (p: string | undefined, relative: boolean) => {
    if (!p) return;
    const local = p.replace(/\\/g, '/');
    if (relative) out.push(join(dir, local));
    else if (isAbsolute(local)) out.push(local);
    out.push(join(dir, basename(local)));
  };
  const e = locator.entries;
  add(e.relative_path, true);
  add(e.absolute_win32_path, false);
  add(e.volume_path, false);
  return [...new Set(out)];
}

export function findParent(childPath: string, locator: ParentLocator): string {
  const found = parentCandidates(childPath, locator).find((p) => existsSync(p));
  if (!found) {
    const where = locator.entries.relative_path ?? locator.entries.absolute_win32_path ?? '(no path in the locator)';
    throw new VdiskError('NOT_FOUND', `${childPath}: parent image ${where} not found`);
  }
  return found;
}

/** `{83EE6B66-...}` and `83ee6b66-...` name the same GUID. */
export function sameGuid(a: string, b: string): boolean {
  return a.replace(/[{}]/g, '').toLowerCase() === b.replace(/[{}]/g, '').toLowerCase();
}

/**
 * The locator Hyper-V writes for a new child: parent_linkage (the parent's DataWriteGuid, braced),
 * the path relative to the child's folder (`.\base.vhdx`, `..\vm\base.vhdx`) and the absolute one in
 * Windows form. On a POSIX host the absolute path is ours with backslashes (`\srv\vm\base.vhdx`):
 * parentCandidates turns it back, and libvhdi looks for its file name beside the child.
 */
export function newParentLocator(childPath: string, parentPath: string, parentDataWriteGuid: string): ParentLocator {
  const parentAbs = resolve(parentPath);
  let rel = relative(dirname(resolve(childPath)), parentAbs).split(sep).join('\\');
  if (!rel.startsWith('..')) rel = `.\\${rel}`;
  const windows = /^[A-Za-z]:\\/.test(parentAbs) ? parentAbs : parentAbs.split(sep).join('\\');
  return {
    locatorType: PARENT_LOCATOR_VHDX,
    entries: {
      parent_linkage: `{${parentDataWriteGuid.replace(/[{}]/g, '')}}`,
      relative_path: rel,
      absolute_win32_path: windows,
    },
  };
}
