/**
 * Casefolded directories (the casefold feature, s_encoding 1 = UTF-8 12.1) compare names after NFD
 * normalisation and full Unicode case folding (the kernel's utf8_casefold). JavaScript has no case
 * folding primitive: upper- then lower-casing after NFD gives it for every name we have met (it folds
 * 'ß' to 'ss' and the final sigma to sigma, as CaseFolding.txt's full mappings do); plain ASCII folding
 * is exact either way.
 */
export function foldName(name: string): string {
  return name.normalize('NFD').toUpperCase().toLowerCase();
}

/** s_encoding values the kernel knows (fs/ext4/super.c, ext4_sb_encoding_map). */
export const ENCODING_UTF8 = 1;
