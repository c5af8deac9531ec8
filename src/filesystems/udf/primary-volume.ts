import { dstring } from './osta.js';

/** The primary volume descriptor (ECMA-167 3/10.1): the volume and volume set identifiers. */
export interface PrimaryVolume {
  sequenceNumber: number;
  volumeIdentifier?: string;
  volumeSetIdentifier?: string;
}

export function parsePrimaryVolume(b: Buffer): PrimaryVolume {
  return {
    sequenceNumber: b.readUInt32LE(16),
    volumeIdentifier: dstring(b.subarray(24, 56)),
    volumeSetIdentifier: dstring(b.subarray(72, 200)),
  };
}

/**
 * The UUID blkid shows for a UDF volume: the leading hex digits (16, else 8) of the volume set
 * identifier, which UDF 2.60 2.2.2.5 asks to start with a unique hex string.
 */
export function volumeSetUuid(set: string | undefined): string | undefined {
  if (!set) return undefined;
  const m = /^[0-9a-fA-F]{16}/.exec(set) ?? /^[0-9a-fA-F]{8}/.exec(set);
  return m ? m[0].toLowerCase() : undefined;
}
