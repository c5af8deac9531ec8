import { isatty } from 'node:tty';

/** The styles the renderers use. */
export interface Styler {
  bold(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
}

const PLAIN: Styler = { bold: (s) => s, red: (s) => s, green: (s) => s, yellow: (s) => s, cyan: (s) => s };

/**
 * Colour only where a person reads it: NO_COLOR (any non-empty value) turns it off, FORCE_COLOR still
 * wins, otherwise a terminal gets it. chalk (which honours FORCE_COLOR, TERM and the terminal's depth
 * on its own) is loaded only when colour may be wanted: loading it costs `info | grep` a few ms, and
 * it makes a descriptor it inspects non-blocking.
 */
function mayColour(fd: 1 | 2): boolean {
  const force = process.env.FORCE_COLOR;
  if (force !== undefined) return force !== '0' && force !== 'false';
  if ((process.env.NO_COLOR ?? '') !== '') return false;
  return isatty(fd);
}

export async function colours(): Promise<{ out: Styler; err: Styler }> {
  const wantOut = mayColour(1);
  const wantErr = mayColour(2);
  if (!wantOut && !wantErr) return { out: PLAIN, err: PLAIN };
  const { Chalk, supportsColor, supportsColorStderr } = await import('chalk');
  const make = (want: boolean, support: typeof supportsColor): Styler => (want && support ? new Chalk({ level: support.level }) : PLAIN);
  return { out: make(wantOut, supportsColor), err: make(wantErr, supportsColorStderr) };
}
