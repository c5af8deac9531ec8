import { readFileSync } from 'node:fs';

declare const VDISK_VERSION: string | undefined;

/** The package version: set by the bundler (a bundle may run where package.json is not), else read. */
export function version(): string {
  if (typeof VDISK_VERSION === 'string') return VDISK_VERSION;
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    return pkg.version;
  } catch {
    return 'unknown';
  }
}
