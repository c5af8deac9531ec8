import type { PositionalFile } from '../../io/file.js';
import type { DriverCheckOptions } from '../driver.js';
import type { CheckReport } from '../../ops/check-report.js';
export async function checkQcow2(file: PositionalFile, options: DriverCheckOptions): Promise<CheckReport> {
  void options;
  return { filename: file.path, format: 'qcow2', 'check-errors': 0, corruptions: 0, leaks: 0, 'corruptions-fixed': 0, 'leaks-fixed': 0, findings: [] };
}
