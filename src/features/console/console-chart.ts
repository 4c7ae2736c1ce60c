// Small line charts of the last hour, drawn on the server as inline SVG: no
// chart library, no script, nothing for the CSP to allow. Colours come from
// the stylesheet (classes s0…s5), so the markup carries no style attribute.

import { type Html, html } from './html.ts';

export interface ChartSeries {
  name: string;
  /** One value per point (null: no value at that point). */
  values: (number | null)[];
}

const W = 560;
const H = 140;
const PAD_L = 56;
const PAD_B = 18;
const PAD_T = 8;

export function lineChart(opts: {
  title: string;
  id: string;
  times: number[];
  series: ChartSeries[];
  format: (v: number) => string;
  /** Fixed top of the y axis (e.g. 1 for a rate); default: the largest value. */
  max?: number;
}): Html {
  const { times, series } = opts;
  const all = series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  const top = opts.max ?? Math.max(0, ...all);
  const yMax = top > 0 ? top : 1;
  const n = times.length;
  const x = (i: number) => PAD_L + (n <= 1 ? 0 : (i / (n - 1)) * (W - PAD_L - 4));
  const y = (v: number) => PAD_T + (1 - Math.min(v, yMax) / yMax) * (H - PAD_T - PAD_B);
  const lines = series.map((s, k) => {
    // A gap (null) starts a new segment.
    let d = '';
    let pen = false;
    s.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) {
        pen = false;
        return;
      }
      d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)} ${y(v).toFixed(1)} `;
      pen = true;
    });
    return html`<path class="line s${k % 6}" d="${d.trim() || 'M0 0'}"></path>`;
  });
  const span = n > 1 ? Math.round((times[n - 1] - times[0]) / 60_000) : 0;
  return html`<figure class="chart" id="${opts.id}">
  <figcaption>${opts.title}</figcaption>
  <svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${opts.title}">
    <line class="axis" x1="${PAD_L}" y1="${H - PAD_B}" x2="${W}" y2="${H - PAD_B}"></line>
    <line class="grid" x1="${PAD_L}" y1="${PAD_T}" x2="${W}" y2="${PAD_T}"></line>
    <text class="tick" x="${PAD_L - 4}" y="${PAD_T + 4}" text-anchor="end">${opts.format(yMax)}</text>
    <text class="tick" x="${PAD_L - 4}" y="${H - PAD_B}" text-anchor="end">${opts.format(0)}</text>
    <text class="tick" x="${W - 2}" y="${H - 4}" text-anchor="end">${n > 1 ? `last ${span} min` : 'collecting…'}</text>
    ${lines}
  </svg>
  <ul class="legend">${series.map((s, k) => html`<li class="s${k % 6}">${s.name}</li>`)}</ul>
</figure>`;
}
