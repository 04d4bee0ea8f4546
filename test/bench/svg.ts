/** Plots drawn by the benchmark itself: plain SVG, no dependency. */
const W = 900;
const H = 360;
const PAD = { l: 60, r: 170, t: 30, b: 40 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
const line = (x1: number, y1: number, x2: number, y2: number, attrs = 'stroke="black"') =>
  `<line x1="${x1}" y1="${y1}" x2="${x2}" y2="${y2}" ${attrs}/>`;
const text = (x: number, y: number, content: string, attrs = '') =>
  `<text x="${x}" y="${y}"${attrs && ` ${attrs}`}>${content}</text>`;
/** A label turned to run upwards at (x, y). */
const upwards = (x: number, y: number, content: string) =>
  text(x, y, content, `transform="rotate(-90 ${x} ${y})" text-anchor="middle"`);

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
  let body = line(PAD.l, H - PAD.b, W - PAD.r, H - PAD.b) + line(PAD.l, PAD.t, PAD.l, H - PAD.b);
  for (let i = 0; i <= 4; i++) {
    const v = (yMax / 4) * i;
    body += text(PAD.l - 6, y(v) + 4, v.toFixed(v < 10 ? 1 : 0), 'text-anchor="end"');
    body += line(PAD.l, y(v), W - PAD.r, y(v), 'stroke="#eee"');
  }
  for (let i = 0; i <= 5; i++) {
    const v = (xMax / 5) * i;
    body += text(x(v), H - PAD.b + 14, String(Math.round(v)), 'text-anchor="middle"');
  }
  body += text((W - PAD.r + PAD.l) / 2, H - 8, esc(xLabel), 'text-anchor="middle"');
  body += upwards(14, (H - PAD.b + PAD.t) / 2, esc(yLabel));
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!;
    for (const m of s.marks ?? [])
      body += line(x(m), PAD.t, x(m), H - PAD.b, `stroke="${color}" stroke-dasharray="3,3" opacity="0.5"`);
    const points = s.points.map(([a, b]) => `${x(a).toFixed(1)},${y(b).toFixed(1)}`).join(' ');
    body += `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${points}"/>`;
    body += `<rect x="${W - PAD.r + 12}" y="${PAD.t + i * 18}" width="10" height="10" fill="${color}"/>`;
    body += text(W - PAD.r + 28, PAD.t + i * 18 + 9, esc(s.name));
  });
  return frame(title, body);
}

/** One bar per label, on a log scale (failures range from 0 to 10^5). */
export function barChart(title: string, yLabel: string, bars: Array<{ label: string; value: number }>): string {
  const yMax = Math.log10(1 + Math.max(1, ...bars.map((b) => b.value))) * 1.15;
  const bw = (W - PAD.l - 40) / Math.max(1, bars.length);
  const y = (v: number) => H - PAD.b - 40 - (Math.log10(1 + v) / yMax) * (H - PAD.t - PAD.b - 40);
  let body = line(PAD.l, y(0), W - 40, y(0));
  body += upwards(14, (H + PAD.t) / 2, `${esc(yLabel)} (log scale)`);
  bars.forEach((b, i) => {
    const left = PAD.l + i * bw + bw * 0.15;
    const [mid, fill] = [left + bw * 0.35, b.value > 0 ? '#d62728' : '#2ca02c'];
    body += `<rect x="${left}" y="${y(b.value)}" width="${bw * 0.7}" height="${y(0) - y(b.value)}" fill="${fill}"/>`;
    body += text(mid, y(b.value) - 4, String(b.value), 'text-anchor="middle"');
    const slant = `text-anchor="end" transform="rotate(-35 ${mid} ${y(0) + 14})" font-size="10"`;
    body += text(mid, y(0) + 14, esc(b.label), slant);
  });
  return frame(title, body);
}
