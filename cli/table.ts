/** Plain aligned columns for listings a person reads (--json gives the data as it is). */
export function printTable (rows: Array<Record<string, unknown>>, columns: string[]): void {
  const cell = (v: unknown): string => v === null || v === undefined ? '-' : String(v)
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)))
  const line = (values: string[]): string => values.map((v, i) => i === values.length - 1 ? v : v.padEnd(widths[i])).join('  ').trimEnd() + '\n'
  process.stdout.write(line(columns.map((c) => c.toUpperCase())) + rows.map((r) => line(columns.map((c) => cell(r[c])))).join(''))
}
