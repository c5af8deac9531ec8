import { VdiskError } from '../errors.js';
import { openImage } from '../formats/open.js';

export interface RebaseOptions {
  format?: string;
  /** -F: the new parent's format; probed when absent. */
  backingFormat?: string;
  /** -u: only point the child at the new parent, copying nothing. */
  unsafe?: boolean;
  onProgress?: (done: number, total: number) => void;
}

/** `rebase` (qemu-img rebase): through the format's optional `rebase` hook. */
export async function rebaseImage(path: string, newParentPath: string, o: RebaseOptions = {}): Promise<void> {
  const image = await openImage(path, { format: o.format, mode: 'rw' });
  try {
    if (!image.rebase) throw new VdiskError('UNSUPPORTED', `${path}: vdisk cannot rebase ${image.format} images`);
    const parent = await openImage(newParentPath, { format: o.backingFormat });
    try {
      await image.rebase(parent, newParentPath, { unsafe: o.unsafe, onProgress: o.onProgress });
    } finally {
      await parent.close();
    }
  } finally {
    await image.close();
  }
}
