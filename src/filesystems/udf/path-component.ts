import { decodeCs0 } from './osta.js';

/**
 * A symbolic link's data is a list of path components (ECMA-167 4/14.16.1): type 1 (with no name) or 2
 * the root, 3 the parent, 4 the current directory, 5 a CS0-named component. Type 1 with a name points
 * somewhere "agreed between originator and recipient": nothing portable, left out as Linux does.
 */
export function pathFromComponents(b: Buffer): { path: string } | string {
  const parts: string[] = [];
  let absolute = false;
  let at = 0;
  while (at < b.length) {
    if (at + 4 > b.length) return 'path component cut short';
    const type = b[at];
    const len = b[at + 1];
    if (at + 4 + len > b.length) return 'path component name runs past the link';
    const name = b.subarray(at + 4, at + 4 + len);
    switch (type) {
      case 1:
      case 2:
        if (type === 1 && len > 0) break;
        parts.length = 0;
        absolute = true;
        break;
      case 3:
        parts.push('..');
        break;
      case 4:
        parts.push('.');
        break;
      case 5: {
        const s = decodeCs0(name);
        if (s === undefined) return `path component with compression id ${name[0]}`;
        parts.push(s);
        break;
      }
      default:
        return `path component type ${type}`;
    }
    at += 4 + len;
  }
  return { path: (absolute ? '/' : '') + parts.join('/') };
}
