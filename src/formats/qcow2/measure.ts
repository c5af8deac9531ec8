import type { Qcow2Options } from './create.js';
export function measureQcow2(o: Qcow2Options, size: number, allocated: number): { required: number; fullyAllocated: number } {
  void o; void size; void allocated;
  return { required: 0, fullyAllocated: 0 };
}
