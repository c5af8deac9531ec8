import { VdiskError } from '../errors.js';
import { openImage } from '../formats/open.js';

export interface CommitOptions {
  format?: string;
  /** -d: leave the child's blocks in place (it is not emptied). */
  keepChild?: boolean;
  onProgress?: (done: number, total: number) => void;
}

/** `commit` (qemu-img commit, Merge-VHD): through the format's optional `commit` hook. */
export async function commitImage(path: string, o: CommitOptions = {}): Promise<{ parent: string; bytes: number }> {
  const image = await openImage(path, { format: o.format, mode: 'rw' });
  try {
    if (!image.commit) throw new VdiskError('UNSUPPORTED', `${path}: vdisk cannot commit ${image.format} images`);
    return await image.commit({ keepChild: o.keepChild, onProgress: o.onProgress });
  } finally {
    await image.close();
  }
}
