/**
 * Every failure the engine reports is a VdiskError with a stable `code`; the CLI maps codes to exit
 * statuses in one place, and library users can branch on them without parsing messages.
 */
export type ErrorCode =
  | 'USAGE' // bad arguments or options
  | 'NOT_FOUND' // the file does not exist
  | 'NOT_A_FILE' // a directory or something else we cannot read as an image
  | 'IO' // the operating system refused a read or write
  | 'CORRUPT' // the image's structures are damaged or inconsistent
  | 'TRUNCATED' // the file ends before a structure it declares
  | 'UNSUPPORTED' // valid, but uses a feature we must not or cannot handle
  | 'RANGE' // a request outside the virtual disk
  | 'LOCKED'; // another process has the image open in a way that excludes this use

export class VdiskError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'VdiskError';
    this.code = code;
  }
}

export function corrupt(file: string, what: string): VdiskError {
  return new VdiskError('CORRUPT', `${file}: ${what}`);
}

export function unsupported(file: string, what: string): VdiskError {
  return new VdiskError('UNSUPPORTED', `${file}: ${what}`);
}

/** Turns an operating-system error into a one-line VdiskError that names the file. */
export function fromSystemError(err: unknown, file: string, doing: string): VdiskError {
  if (err instanceof VdiskError) return err;
  const e = err as NodeJS.ErrnoException;
  switch (e?.code) {
    case 'ENOENT':
      return new VdiskError('NOT_FOUND', `${file}: no such file`);
    case 'EISDIR':
      return new VdiskError('NOT_A_FILE', `${file}: is a directory, not an image`);
    case 'EACCES':
    case 'EPERM':
      return new VdiskError('IO', `${file}: permission denied while ${doing}`);
    default:
      return new VdiskError('IO', `${file}: ${doing} failed: ${e?.message ?? String(err)}`);
  }
}
