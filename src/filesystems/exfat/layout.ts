import { VdiskError } from '../../errors.js';
import type { VolumeReader } from '../types.js';
import type { FatTable } from './fat.js';

/** What every part of the reader needs to know about the volume: where clusters are, and how to name it. */
export interface ExfatLayout {
  volume: VolumeReader;
  /** The volume's name in messages ("disk.vhdx partition 2"). */
  name: string;
  clusterSize: number;
  /** Byte offset of cluster 2, the first of the cluster heap (3.1.8). */
  heapOffset: number;
  clusterCount: number;
  fat: FatTable;
  /** Adds a warning for the user (once per distinct message). */
  warn(message: string): void;
}

export function isHeapCluster(layout: ExfatLayout, cluster: number): boolean {
  return cluster >= 2 && cluster <= layout.clusterCount + 1;
}

/** Byte offset of a heap cluster in the volume. */
export function clusterOffset(layout: ExfatLayout, cluster: number): number {
  return layout.heapOffset + (cluster - 2) * layout.clusterSize;
}

/** A one-line CORRUPT error naming the volume and the structure: "disk.img: exfat /a/b: what". */
export function corruptExfat(layout: { name: string }, where: string, what: string): VdiskError {
  return new VdiskError('CORRUPT', `${layout.name}: exfat ${where}: ${what}`);
}
