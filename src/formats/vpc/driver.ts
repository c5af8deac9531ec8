import type { FormatDriver } from '../driver.js';
import { FOOTER_SIZE } from './constants.js';
import { footerChecksumOk, hasFooterCookie } from './footer.js';
import { VPC_CREATE_OPTIONS, convertToFixed, measureVpc, writeNewVpc } from './create.js';
import { VpcImage } from './vpc-image.js';
import { checkVpc } from './check.js';

export { azureSize } from './geometry.js';

/** A valid footer at the end: the only mark of a fixed VHD (a 511-byte one of old writers too). */
function trailingFooter(tail: Buffer | null): boolean {
  if (!tail) return false;
  if (footerChecksumOk(tail)) return true;
  const short = Buffer.alloc(FOOTER_SIZE);
  tail.copy(short, 0, 1);
  return footerChecksumOk(short);
}

export const vpcDriver: FormatDriver = {
  name: 'vpc',
  aliases: ['vhd'],
  description: "Microsoft's VHD (Virtual PC, Hyper-V, Azure): fixed, dynamic and differencing",
  extensions: ['.vhd'],
  probe: (p) => (hasFooterCookie(p.head) ? 100 : trailingFooter(p.tail) ? 50 : 0),
  async open(file, ctx) {
    return VpcImage.fromFile(file, ctx);
  },
  createOptions: VPC_CREATE_OPTIONS,
  create: (file, req) => writeNewVpc(file, req),
  convertFrom: (source, file, req, onProgress) => convertToFixed(source, file, req, onProgress),
  measure: (req, allocated) => measureVpc(req, allocated),
  check: (file, options) => checkVpc(file, options),
};
