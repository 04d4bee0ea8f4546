/** Plots drawn by the benchmark itself: plain SVG, no dependency. */
const W = 900;
const H = 360;
const PAD = { l: 60, r: 170, t: 30, b: 40 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

function frame(title: string, body: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="${PAD.l}" y="18" font-size="14" font-weight="bold">${esc(title)}</text>
${body}
</svg>
`;
}

/** Lines of [x, y] per series, with vertical marks (e.g. upgrades). */
export function lineChart(
  title: string,
  xLabel: string,
  yLabel: string,
  series: Array<{ name: string; points: Array<[number, number]>; marks?: number[] }>,
): string {
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const xMax = Math.max(1, ...xs);
  const yMax = Math.max(1, ...ys) * 1.1;
  const x = (v: number) => PAD.l + (v / xMax) * (W - PAD.l - PAD.r);
  const y = (v: number) => H - PAD.b - (v / yMax) * (H - PAD.t - PAD.b);
  let body = `<line x1="${PAD.l}" y1="${H - PAD.b}" x2="${W - PAD.r}" y2="${H - PAD.b}" stroke="black"/><line x1="${PAD.l}" y1="${PAD.t}" x2="${PAD.l}" y2="${H - PAD.b}" stroke="black"/>`;
  for (let i = 0; i <= 4; i++) {
    const v = (yMax / 4) * i;
    body += `<text x="${PAD.l - 6}" y="${y(v) + 4}" text-anchor="end">${v.toFixed(v < 10 ? 1 : 0)}</text><line x1="${PAD.l}" y1="${y(v)}" x2="${W - PAD.r}" y2="${y(v)}" stroke="#eee"/>`;
  }
  for (let i = 0; i <= 5; i++) {
    const v = (xMax / 5) * i;
    body += `<text x="${x(v)}" y="${H - PAD.b + 14}" text-anchor="middle">${Math.round(v)}</text>`;
  }
  body += `<text x="${(W - PAD.r + PAD.l) / 2}" y="${H - 8}" text-anchor="middle">${esc(xLabel)}</text>`;
  body += `<text x="14" y="${(H - PAD.b + PAD.t) / 2}" transform="rotate(-90 14 ${(H - PAD.b + PAD.t) / 2})" text-anchor="middle">${esc(yLabel)}</text>`;
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!;
    for (const m of s.marks ?? [])
      body += `<line x1="${x(m)}" y1="${PAD.t}" x2="${x(m)}" y2="${H - PAD.b}" stroke="${color}" stroke-dasharray="3,3" opacity="0.5"/>`;
    body += `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${s.points.map(([a, b]) => `${x(a).toFixed(1)},${y(b).toFixed(1)}`).join(' ')}"/>`;
    body += `<rect x="${W - PAD.r + 12}" y="${PAD.t + i * 18}" width="10" height="10" fill="${color}"/><text x="${W - PAD.r + 28}" y="${PAD.t + i * 18 + 9}">${esc(s.name)}</text>`;
  });
  return frame(title, body);
}

/** One bar per label, on a log scale (failures range from 0 to 10^5). */
export function barChart(title: string, yLabel: string, bars: Array<{ label: string; value: number }>): string {
  const yMax = Math.log10(1 + Math.max(1, ...bars.map((b) => b.value))) * 1.15;
  const bw = (W - PAD.l - 40) / Math.max(1, bars.length);
  const y = (v: number) => H - PAD.b - 40 - (Math.log10(1 + v) / yMax) * (H - PAD.t - PAD.b - 40);
  let body = `<line x1="${PAD.l}" y1="${y(0)}" x2="${W - 40}" y2="${y(0)}" stroke="black"/>`;
  body += `<text x="14" y="${(H + PAD.t) / 2}" transform="rotate(-90 14 ${(H + PAD.t) / 2})" text-anchor="middle">${esc(yLabel)} (log scale)</text>`;
  bars.forEach((b, i) => {
    const left = PAD.l + i * bw + bw * 0.15;
    body += `<rect x="${left}" y="${y(b.value)}" width="${bw * 0.7}" height="${y(0) - y(b.value)}" fill="${b.value > 0 ? '#d62728' : '#2ca02c'}"/>`;
    body += `<text x="${left + bw * 0.35}" y="${y(b.value) - 4}" text-anchor="middle">${b.value}</text>`;
    body += `<text x="${left + bw * 0.35}" y="${y(0) + 14}" text-anchor="end" transform="rotate(-35 ${left + bw * 0.35} ${y(0) + 14})" font-size="10">${esc(b.label)}</text>`;
  });
  return frame(title, body);
}
