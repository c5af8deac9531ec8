export { openImage, probeFormat, type OpenImageOptions } from './formats/open.js';
export type { DiskImage, Extent, ExtentState, ImageFormat } from './formats/image.js';
export { RawImage } from './formats/raw.js';
export { VhdxImage, type VhdxSubformat } from './formats/vhdx/vhdx-image.js';
export { VdiskError, type ErrorCode } from './errors.js';
export { PositionalFile, type ByteSource } from './io/file.js';
export { describeImage, type ImageInfo } from './info.js';
export { exportImage, type ExportOptions, type ExportTarget } from './export.js';
export { importIntoImage, type ImportOptions, type ImportSource } from './import.js';
export { convertImage, type ConvertOptions } from './convert.js';
export { mapImage, type MapExtent } from './map.js';
export { compareImages, type CompareOptions, type CompareResult } from './compare.js';
export { createVhdx, createRaw, defaultBlockSize, type VhdxCreateOptions } from './formats/vhdx/create.js';
export { checkImage, type CheckOptions, type RepairMode } from './check/check.js';
export { exitCodeOf, type CheckReport, type Finding } from './check/report.js';
export { readPartitionTable } from './partitions/detect.js';
export type { Partition, PartitionTable, Scheme } from './partitions/types.js';
export { detectVolumes, detectFilesystem, DETECTORS, type Volume } from './filesystems/detect.js';
export type { FsInfo, VolumeReader, Detector } from './filesystems/types.js';
export { openFilesystem, type OpenFilesystemOptions } from './filesystems/open.js';
export {
  Filesystem, fileStream, modeOf, typeFromMode,
  type FsReader, type FsStats, type FsTime, type FsFile, type FsDirEntry, type FileType, type ByteRange, type FilesystemDriver, type FsContext,
} from './filesystems/filesystem.js';
export { FILESYSTEM_DRIVERS } from './filesystems/readers.js';
