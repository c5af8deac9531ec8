import { Chalk, supportsColor, supportsColorStderr, type ChalkInstance } from 'chalk';

/**
 * Colour only where a person reads it: chalk already honours FORCE_COLOR and terminals, this adds the
 * NO_COLOR convention (any non-empty value turns colour off, FORCE_COLOR still wins).
 */
function make(support: typeof supportsColor): ChalkInstance {
  const noColor = (process.env.NO_COLOR ?? '') !== '' && process.env.FORCE_COLOR === undefined;
  return new Chalk({ level: noColor || !support ? 0 : support.level });
}

export const out = make(supportsColor);
export const err = make(supportsColorStderr);
