/**
 * Bar charts as standalone SVG text, for docs/benchmarks.md: no online service, no dependency.
 *
 * A chart is groups (one per workload, say) of bars (one per tool), drawn horizontally so long
 * labels fit; each bar is labelled with its value. Colours are assigned per series name in order of
 * first appearance, so one tool keeps its colour across a chart's groups.
 */

export interface BarGroup {
  /** The group's label (a workload, a percentile). */
  readonly label: string;
  /** Its bars, top to bottom: series name and value. */
  readonly bars: readonly { readonly series: string; readonly value: number }[];
}

export interface BarChart {
  readonly title: string;
  /** The value axis' unit, shown after each value and in the subtitle ("rows/s", "ms"). */
  readonly unit: string;
  readonly groups: readonly BarGroup[];
  /** Formats a bar's value (default: thousands separators, no decimals). */
  readonly format?: (value: number) => string;
}

const PALETTE = ['#336791', '#e07b39', '#5b9e4d', '#b8455b', '#7a5ea8', '#8c8c8c', '#c9a227', '#3aa6a6'];
const BAR = 18;
const GAP = 4;
const GROUP_GAP = 14;
const LABEL_WIDTH = 190;
const PLOT_WIDTH = 460;
const VALUE_WIDTH = 110;

const escapeXml = (text: string): string =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const defaultFormat = (value: number): string => Math.round(value).toLocaleString('en-US');

/** The chart as an SVG document. */
export function barChartSvg(chart: BarChart): string {
  const format = chart.format ?? defaultFormat;
  const series: string[] = [];
  for (const group of chart.groups) {
    for (const bar of group.bars) if (!series.includes(bar.series)) series.push(bar.series);
  }
  const colour = (name: string): string => PALETTE[series.indexOf(name) % PALETTE.length] ?? '#000';
  const max = Math.max(1e-9, ...chart.groups.flatMap((g) => g.bars.map((b) => b.value)));
  const parts: string[] = [];
  let y = 48;
  for (const group of chart.groups) {
    const height = group.bars.length * (BAR + GAP);
    parts.push(
      `<text x="8" y="${y + height / 2}" dominant-baseline="middle" font-weight="bold">` +
        `${escapeXml(group.label)}</text>`,
    );
    for (const bar of group.bars) {
      const width = Math.max(1, (bar.value / max) * PLOT_WIDTH);
      parts.push(
        `<rect x="${LABEL_WIDTH}" y="${y}" width="${width.toFixed(1)}" height="${BAR}" fill="${colour(bar.series)}"/>`,
        `<text x="${LABEL_WIDTH + width + 6}" y="${y + BAR / 2}" dominant-baseline="middle">` +
          `${escapeXml(format(bar.value))} ${escapeXml(chart.unit)}</text>`,
      );
      y += BAR + GAP;
    }
    y += GROUP_GAP;
  }
  // The legend: one series a line, under the bars.
  let legendY = y + 4;
  for (const name of series) {
    parts.push(
      `<rect x="${LABEL_WIDTH}" y="${legendY}" width="12" height="12" fill="${colour(name)}"/>`,
      `<text x="${LABEL_WIDTH + 18}" y="${legendY + 6}" dominant-baseline="middle">${escapeXml(name)}</text>`,
    );
    legendY += 18;
  }
  const width = LABEL_WIDTH + PLOT_WIDTH + VALUE_WIDTH;
  const height = legendY + 10;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">\n` +
    `<rect width="100%" height="100%" fill="#fff"/>\n` +
    `<text x="8" y="22" font-size="15" font-weight="bold">${escapeXml(chart.title)}</text>\n` +
    parts.join('\n') +
    '\n</svg>\n'
  );
}
