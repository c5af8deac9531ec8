export { openImage, probeFormat, type OpenImageOptions } from './formats/open.js';
export type { DiskImage, Extent, ExtentState, ImageFormat } from './formats/image.js';
export { RawImage } from './formats/raw.js';
export { VhdxImage, type VhdxSubformat } from './formats/vhdx/vhdx-image.js';
export { VdiskError, type ErrorCode } from './errors.js';
export { PositionalFile, type ByteSource } from './io/file.js';
export { describeImage, type ImageInfo } from './info.js';
export { exportImage, type ExportOptions, type ExportTarget } from './export.js';
