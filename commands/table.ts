/**
 * A boxed table as the human outputs print it: a line per row, columns as wide as their widest
 * cell, built in one pass over the rows (a GPT of 32,768 partitions is 32,768 rows; the general
 * table library we used before laid them out in quadratic time).
 */
export function renderTable(head: string[], rows: string[][], styleHead: (s: string) => string = (s) => s): string {
  const widths = head.map((h) => h.length);
  for (const row of rows) {
    for (let c = 0; c < widths.length; c++) widths[c] = Math.max(widths[c], (row[c] ?? '').length);
  }
  const rule = (left: string, mid: string, right: string) => left + widths.map((w) => '─'.repeat(w + 2)).join(mid) + right;
  const line = (cells: string[], style: (s: string) => string = (s) => s) =>
    '│' + widths.map((w, c) => ` ${style((cells[c] ?? '').padEnd(w))} `).join('│') + '│';
  const out: string[] = [rule('┌', '┬', '┐'), line(head, styleHead)];
  for (const row of rows) out.push(line(row));
  out.push(rule('└', '┴', '┘'));
  return out.join('\n');
}
