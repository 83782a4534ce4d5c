// Small SVG charts: lines over steps (training curves) and points over a parameter (trials).

import { h, number } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 400;
const HEIGHT = 220;
const MARGIN = { left: 58, right: 12, top: 10, bottom: 26 };
const COLOURS = ['#0969da', '#cf222e', '#1a7f37', '#8250df', '#bf8700', '#1b7c83', '#d1242f', '#57606a'];

function s(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

function extent(values) {
  let low = Math.min(...values);
  let high = Math.max(...values);
  if (!Number.isFinite(low)) return [0, 1];
  if (low === high) { low -= Math.abs(low) * 0.1 || 1; high += Math.abs(high) * 0.1 || 1; }
  return [low, high];
}

function ticks([low, high], count) {
  return Array.from({ length: count }, (_, i) => low + ((high - low) * i) / (count - 1));
}

/** A tick label with as many decimals as the axis' span needs to tell ticks apart. */
function tickLabel(value, [low, high]) {
  const span = Math.abs(high - low) || 1;
  if (Math.abs(value) >= 10000) return `${Number((value / 1000).toFixed(span >= 4000 ? 0 : 1))}k`;
  const decimals = Math.min(8, Math.max(0, 1 - Math.floor(Math.log10(span / 4))));
  return value.toFixed(decimals);
}

/** The plot area with axes; returns the svg and the mapping from data to pixels. */
function frame(xDomain, yDomain, xLabels) {
  const [x0, x1] = xDomain;
  const [y0, y1] = yDomain;
  const x = (value) => MARGIN.left + ((value - x0) / (x1 - x0)) * (WIDTH - MARGIN.left - MARGIN.right);
  const y = (value) => HEIGHT - MARGIN.bottom - ((value - y0) / (y1 - y0)) * (HEIGHT - MARGIN.top - MARGIN.bottom);
  const svg = s('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img' });
  svg.append(
    s('line', { class: 'axis', x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: HEIGHT - MARGIN.bottom, y2: HEIGHT - MARGIN.bottom }),
    s('line', { class: 'axis', x1: MARGIN.left, x2: MARGIN.left, y1: MARGIN.top, y2: HEIGHT - MARGIN.bottom }));
  for (const value of ticks(yDomain, 5)) {
    svg.append(s('text', { class: 'tick', x: MARGIN.left - 4, y: y(value) + 3, 'text-anchor': 'end' }, tickLabel(value, yDomain)));
  }
  const xTicks = xLabels ? xLabels.map((label, i) => [i, label]) : ticks(xDomain, 5).map((v) => [v, tickLabel(v, xDomain)]);
  for (const [value, label] of xTicks) {
    svg.append(s('text', { class: 'tick', x: x(value), y: HEIGHT - MARGIN.bottom + 14, 'text-anchor': 'middle' }, label));
  }
  return { svg, x, y };
}

function figure(title, svg, legend, dataset) {
  return h('figure', { class: 'chart', dataset }, h('figcaption', {}, title), svg,
    legend.length > 1 ? h('div', { class: 'legend' }, legend.map(([name, colour]) =>
      h('span', {}, h('i', { style: { background: colour } }), name))) : null);
}

/** Lines of `series` ([{name, points: [{step, value}]}]) over steps. */
export function lineChart(title, series) {
  const all = series.flatMap((line) => line.points);
  const { svg, x, y } = frame(extent(all.map((p) => p.step)), extent(all.map((p) => p.value)));
  const legend = [];
  series.forEach((line, i) => {
    const colour = COLOURS[i % COLOURS.length];
    legend.push([line.name, colour]);
    const d = line.points.map((p, j) => `${j ? 'L' : 'M'}${x(p.step).toFixed(1)},${y(p.value).toFixed(1)}`).join('');
    svg.append(s('path', { d, fill: 'none', stroke: colour, 'stroke-width': 1.6, 'data-run': line.name, 'data-points': line.points.length }));
    if (line.points.length === 1) {
      svg.append(s('circle', { cx: x(line.points[0].step), cy: y(line.points[0].value), r: 3, fill: colour }));
    }
  });
  return figure(title, svg, legend, { tag: title });
}

/**
 * Points ({x, y, best}) of a value against a parameter; `categories` puts x on an ordinal axis of
 * those labels. The best point is drawn larger, in green.
 */
export function scatterChart(title, points, categories) {
  const xs = categories ? [-0.5, categories.length - 0.5] : extent(points.map((p) => p.x));
  const { svg, x, y } = frame(xs, extent(points.map((p) => p.y)), categories);
  for (const point of points) {
    const px = categories ? categories.indexOf(point.x) : point.x;
    svg.append(s('circle', {
      cx: x(px), cy: y(point.y), r: point.best ? 5 : 3.5,
      fill: point.best ? '#1a7f37' : '#0969da', 'fill-opacity': 0.8, class: point.best ? 'best' : 'trial',
    }, s('title', {}, `${point.label ?? ''} ${number(point.y)}`)));
  }
  return figure(title, svg, [], { chart: title });
}

/**
 * Trials ({x, y, label, front}) of two objectives against each other; the points on the Pareto
 * front are drawn larger, in green, and joined in order of the first objective.
 */
export function paretoChart(title, points) {
  const { svg, x, y } = frame(extent(points.map((p) => p.x)), extent(points.map((p) => p.y)));
  const front = points.filter((p) => p.front).sort((a, b) => a.x - b.x);
  if (front.length > 1) {
    const d = front.map((p, i) => `${i ? 'L' : 'M'}${x(p.x).toFixed(1)},${y(p.y).toFixed(1)}`).join('');
    svg.append(s('path', { d, fill: 'none', stroke: '#1a7f37', 'stroke-width': 1.2, 'stroke-dasharray': '4 3' }));
  }
  for (const point of points) {
    svg.append(s('circle', {
      cx: x(point.x), cy: y(point.y), r: point.front ? 5 : 3.5,
      fill: point.front ? '#1a7f37' : '#0969da', 'fill-opacity': 0.8, class: point.front ? 'front' : 'trial',
    }, s('title', {}, `${point.label} (${number(point.x)}, ${number(point.y)})`)));
  }
  return figure(title, svg, [], { chart: title });
}

/**
 * A tuning job's or study's objective over its scored trials: by trial, then by each parameter.
 * `trials` are {id, objective, best, values: {parameter: value}}; `params` are {name,
 * categorical, categories}, a categorical parameter's values placed on an axis of `categories`.
 */
export function objectiveCharts(metric, trials, params) {
  const point = (trial, x) => ({ x, y: trial.objective, best: trial.best, label: `trial ${trial.id}` });
  return [
    scatterChart(`${metric} by trial`, trials.map((t) => point(t, Number(t.id)))),
    ...params.map(({ name, categorical, categories }) => scatterChart(`${metric} by ${name}`,
      trials.map((t) => point(t, categorical ? t.values[name] : Number(t.values[name]))),
      categorical ? categories : undefined)),
  ];
}
