/**
 * `p`, marked as handled from now on. A list of reads or writes started in a loop and awaited together
 * after it (Promise.all) still sees every rejection; but if one fails while the loop is still going
 * (awaiting a table, or throwing), its rejection would be found without a handler in between, which
 * Node reports as unhandled and turns into a crash with a stack trace (copyInto crashed that way when
 * the file-size limit refused a write, EFBIG).
 */
export function awaitedLater<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}
