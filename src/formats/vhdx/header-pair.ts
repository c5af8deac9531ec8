import type { PositionalFile } from '../../io/file.js';
import { HEADER1_OFFSET, HEADER2_OFFSET } from './constants.js';
import { serializeHeader, type VhdxHeader } from './header.js';

export type HeaderChange = Partial<Pick<VhdxHeader, 'fileWriteGuid' | 'dataWriteGuid' | 'logGuid'>>;

/**
 * The two header slots and which is current. Updates follow the format's protocol: write the
 * non-current slot with the next sequence number and flush, then do it again for the other slot, so
 * a write torn at any point leaves a valid current header holding either the old or the new state.
 */
export class HeaderPair {
  constructor(
    private readonly file: PositionalFile,
    readonly headers: [VhdxHeader | null, VhdxHeader | null],
    public current: 0 | 1,
  ) {}

  get header(): VhdxHeader {
    return this.headers[this.current] as VhdxHeader;
  }

  async update(change: HeaderChange): Promise<void> {
    for (let i = 0; i < 2; i++) {
      const slot = (1 - this.current) as 0 | 1;
      const next: VhdxHeader = { ...this.header, ...change, sequenceNumber: this.header.sequenceNumber + 1n };
      await this.file.writeAt(serializeHeader(next), slot === 0 ? HEADER1_OFFSET : HEADER2_OFFSET);
      await this.file.flush();
      this.headers[slot] = next;
      this.current = slot;
    }
  }
}
