import type { PositionalFile } from '../../io/file.js';
import type { CreateRequest } from '../driver.js';
import type { DiskImage } from '../image.js';
export async function convertCompressed(source: DiskImage, file: PositionalFile, req: CreateRequest, onProgress?: (done: number, total: number) => void): Promise<boolean> {
  void source; void file; void req; void onProgress;
  return false;
}
