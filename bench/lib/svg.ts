/** A hand-written horizontal bar chart of ratios vs baseline (1.0 marked), no dependencies. */

/** One bar: a label, value/baseline, and whether it is on the good side of the baseline. */
export interface Bar {
  label: string;
  ratio: number;
  good: boolean;
  failed: boolean;
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/**
 * Renders `bars` as an SVG document. The x axis runs from 0 to the largest ratio, at least 2 and
 * at most 4 so that one outlier does not flatten the rest; longer bars are clipped, their label
 * still gives the value.
 */
export function ratioChart(title: string, bars: Bar[]): string {
  const labelW = 330;
  const plotW = 420;
  const rowH = 22;
  const top = 40;
  const height = top + bars.length * rowH + 30;
  const finite = bars.map((b) => b.ratio).filter(Number.isFinite);
  const max = Math.min(4, Math.max(2, ...finite)) * 1.05;
  const x = (r: number) => labelW + (Math.min(r, max) / max) * plotW;
  const rows = bars.map((b, i) => {
    const y = top + i * rowH;
    const w = Number.isFinite(b.ratio) ? x(b.ratio) - labelW : 0;
    const fill = b.failed ? "#999" : b.good ? "#3a7" : "#d54";
    const text = Number.isFinite(b.ratio) ? `${b.ratio.toFixed(2)}×${b.failed ? " (failures)" : ""}` : "n/a";
    return [
      `<text x="${labelW - 8}" y="${y + 15}" text-anchor="end">${esc(b.label)}</text>`,
      `<rect x="${labelW}" y="${y + 4}" width="${w.toFixed(1)}" height="${rowH - 8}" fill="${fill}"/>`,
      `<text x="${(labelW + w + 4).toFixed(1)}" y="${y + 15}">${esc(text)}</text>`,
    ].join("");
  });
  const one = x(1).toFixed(1);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${labelW + plotW + 90}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<text x="10" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`,
    ...rows,
    `<line x1="${one}" y1="${top - 4}" x2="${one}" y2="${height - 24}" stroke="#000" stroke-dasharray="4 3"/>`,
    `<text x="${one}" y="${height - 10}" text-anchor="middle">1.0 = baseline</text>`,
    `</svg>`,
    "",
  ].join("\n");
}
