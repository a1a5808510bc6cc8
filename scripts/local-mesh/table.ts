/** Rows as left-aligned columns, `gap` spaces apart, each line indented by `indent`. */
export function formatTable(rows: string[][], opts: { gap?: number; indent?: string } = {}): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  const gap = " ".repeat(opts.gap ?? 2);
  return rows.map((r) => (opts.indent ?? "") + r.map((v, c) => v.padEnd(widths[c])).join(gap).trimEnd()).join("\n");
}
