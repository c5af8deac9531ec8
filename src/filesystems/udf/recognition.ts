import type { VolumeReader } from '../types.js';

/**
 * The volume recognition sequence (ECMA-167 2/8.3, 3/9.1): descriptors from byte 32768, each in its own
 * 2048-byte slot (or in its own block when blocks are larger), from BEA01 to TEA01; an NSR02 or NSR03
 * among them says the volume holds ECMA-167 (UDF) structures.
 */
const KNOWN = ['BEA01', 'NSR02', 'NSR03', 'TEA01', 'CD001', 'BOOT2', 'CDW02'];
const MAX_DESCRIPTORS = 64;

/** 'NSR02' or 'NSR03' when the sequence names one, else null; `step` is the slot size. */
export async function findNsr(v: VolumeReader, step = 2048): Promise<string | null> {
  let nsr: string | null = null;
  for (let i = 0; i < MAX_DESCRIPTORS; i++) {
    const d = await v.read(32768 + i * step, 8);
    const id = d.toString('latin1', 1, 6);
    if (id === 'NSR02' || id === 'NSR03') nsr = id;
    if (!KNOWN.includes(id)) break;
  }
  return nsr;
}
