export { openImage, probeFormat, type OpenImageOptions } from './formats/open.js';
export type { CompactOptions, CompactResult, DiskImage, Extent, ExtentState, ImageFormat } from './formats/image.js';
export { RawImage } from './formats/raw/raw-image.js';
export { FORMAT_DRIVERS, driverByName, probeDriver } from './formats/drivers.js';
export type { FormatDriver, ProbeInput, OpenContext, CreateRequest, CreateResult, Mapping, FormatDetails, DriverCheckOptions } from './formats/driver.js';
export { VhdxImage, type VhdxSubformat } from './formats/vhdx/vhdx-image.js';
export { VpcImage } from './formats/vpc/vpc-image.js';
export { azureSize } from './formats/vpc/geometry.js';
export { Qcow2Image } from './formats/qcow2/qcow2-image.js';
export { VmdkImage } from './formats/vmdk/vmdk-image.js';
export { VdiImage } from './formats/vdi/vdi-image.js';
export { VdiskError, type ErrorCode } from './errors.js';
export { PositionalFile, type ByteSource } from './io/file.js';
export { describeImage, type ImageInfo } from './ops/info.js';
export { exportImage, type ExportOptions, type ExportTarget } from './ops/export.js';
export { importIntoImage, type ImportOptions, type ImportSource } from './ops/import.js';
export { convertImage, type ConvertOptions } from './ops/convert.js';
export { mapImage, type MapExtent } from './ops/map.js';
export { compareImages, type CompareOptions, type CompareResult } from './ops/compare.js';
export { defaultBlockSize, type VhdxCreateOptions } from './formats/vhdx/create.js';
export { createImage, createVhdx, createRaw, type CreateImageOptions } from './ops/create.js';
export { checkImage, type CheckOptions, type RepairMode } from './ops/check.js';
export { measureImage, type MeasureOptions, type MeasureResult } from './ops/measure.js';
export { resizeImage, type ResizeOptions, type SizeChange } from './ops/resize.js';
export { compactImage, type CompactImageOptions, type CompactReport } from './ops/compact.js';
export { commitImage, type CommitOptions } from './ops/commit.js';
export { rebaseImage, type RebaseOptions } from './ops/rebase.js';
export { exitCodeOf, type CheckReport, type Finding } from './ops/check-report.js';
export { readPartitionTable } from './partitions/detect.js';
export type { Partition, PartitionTable, Scheme } from './partitions/types.js';
export { detectVolumes, detectFilesystem, DETECTORS, type Volume } from './filesystems/detect.js';
export type { FsInfo, VolumeReader, Detector } from './filesystems/types.js';
export { openFilesystem, type OpenFilesystemOptions } from './filesystems/open.js';
export {
  Filesystem, fileStream, modeOf, typeFromMode,
  type FsReader, type FsStats, type FsTime, type FsFile, type FsDirEntry, type FileType, type ByteRange, type FilesystemDriver, type FsContext,
  type PeekedFile, type PeekedPiece,
} from './filesystems/filesystem.js';
export { FILESYSTEM_DRIVERS } from './filesystems/readers.js';
