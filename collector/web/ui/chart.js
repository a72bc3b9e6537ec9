// Charts drawn with uPlot (served from node_modules as /static/vendor/uPlot.iife.min.js, global uPlot).
import { el, epochSeconds } from './render.js';

export const COLORS = { mediated: '#2e7d32', bypass: '#c62828', other: '#1565c0', process: '#6a1b9a', session: '#ef6c00', lost: '#c62828' };

/**
 * A time series chart: `rows` with a DateTime column `x` and one numeric column per series. Bars when
 * `bars` (counts per bucket), lines otherwise.
 */
export function timeChart(title, rows, x, series, options = {}) {
  const figure = el('figure', { class: 'chart', 'data-chart': title });
  figure.append(el('figcaption', {}, title));
  const holder = el('div', { class: 'plot' });
  figure.append(holder);
  if (rows.length === 0) {
    figure.append(el('p', { class: 'muted' }, 'No data in this range.'));
    return figure;
  }
  const data = [rows.map((r) => epochSeconds(r[x])), ...series.map((s) => rows.map((r) => Number(r[s.column])))];
  // Bars of several series stand side by side within their bucket rather than over each other.
  const barPaths = (i) => uPlot.paths.bars({ size: [0.8 / series.length, 40], align: series.length === 1 ? 0 : i === 0 ? -1 : 1 });
  const opts = {
    width: 600,
    height: options.height ?? 220,
    // Bars are centred on their bucket's start: pad the x range by a bucket so the first and last are whole.
    scales: { x: { time: true, ...(options.bars ? { range: (_u, min, max) => [min - bucketWidth(data[0]), max + bucketWidth(data[0])] } : {}) }, ...(options.percent ? { y: { range: [0, 100] } } : {}) },
    axes: [{}, { label: options.yLabel ?? '' }],
    series: [
      {},
      ...series.map((s, i) => ({ label: s.label, stroke: s.color, fill: options.bars ? `${s.color}99` : undefined, width: 2, paths: options.bars ? barPaths(i) : undefined, points: { show: !options.bars && rows.length < 60 } })),
    ],
  };
  // uPlot needs its container in the document to measure it; size it once it is.
  requestAnimationFrame(() => {
    opts.width = Math.max(300, holder.clientWidth || 600);
    new uPlot(opts, data, holder);
  });
  return figure;
}

/** Horizontal bars for a few labelled values (top offenders, coverage by resource), drawn as uPlot bars. */
export function barChart(title, labels, series, options = {}) {
  const figure = el('figure', { class: 'chart', 'data-chart': title });
  figure.append(el('figcaption', {}, title));
  const holder = el('div', { class: 'plot' });
  figure.append(holder);
  if (labels.length === 0) {
    figure.append(el('p', { class: 'muted' }, 'No data in this range.'));
    return figure;
  }
  const xs = labels.map((_, i) => i);
  const opts = {
    width: 600,
    height: options.height ?? 220,
    scales: { x: { time: false, range: [-0.5, labels.length - 0.5] }, ...(options.percent ? { y: { range: [0, 100] } } : {}) },
    axes: [{ values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) ? shorten(labels[t] ?? '') : '')), rotate: 0 }, { label: options.yLabel ?? '' }],
    series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, fill: `${s.color}99`, paths: uPlot.paths.bars({ size: [0.6 / series.length, 60], align: 0 }), points: { show: false } }))],
  };
  const data = [xs, ...series.map((s) => s.values.map(Number))];
  requestAnimationFrame(() => {
    opts.width = Math.max(300, holder.clientWidth || 600);
    new uPlot(opts, data, holder);
  });
  return figure;
}

/** The smallest step between consecutive x values (a bucket), or a minute for a single point. */
function bucketWidth(xs) {
  let width = Infinity;
  for (let i = 1; i < xs.length; i++) width = Math.min(width, xs[i] - xs[i - 1]);
  return Number.isFinite(width) && width > 0 ? width : 60;
}

function shorten(text) {
  return text.length > 18 ? `${text.slice(0, 8)}…${text.slice(-8)}` : text;
}
