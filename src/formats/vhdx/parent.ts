import { dirname, isAbsolute, join, basename } from 'node:path';
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
