import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { LoadResult } from './result.js';

export interface ReportSection {
  title: string;
  result: LoadResult;
}

export interface ReportOptions {
  title?: string;
  /** A paragraph above the sections. */
  intro?: string;
}

/**
 * uPlot's script, stylesheet and licence, resolved like any dependency, so the report works
 * from a source checkout and from an installed package alike.
 */
function uPlotAssets(): { script: string; css: string; licence: string } {
  const require = createRequire(import.meta.url);
  const read = (path: string) => readFileSync(require.resolve(path), 'utf8');
  return { script: read('uplot/dist/uPlot.iife.min.js'), css: read('uplot/dist/uPlot.min.css'), licence: read('uplot/LICENSE') };
}

const escapeHtml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/**
 * One self-contained HTML page: the data as JSON, uPlot and the drawing script inline, and a
 * Content-Security-Policy that forbids every fetch, so viewing it touches no network.
 */
export function renderReportHtml(sections: ReportSection[], options: ReportOptions = {}): string {
  const uplot = uPlotAssets();
  const title = options.title ?? 'imds-cache-proxy load test';
  // "<" escaped: no "</script>" inside the data can end its script element early.
  const data = JSON.stringify({ title, intro: options.intro ?? '', sections }).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${escapeHtml(title)}</title>
<style>${uplot.css}</style>
<style>${PAGE_CSS}</style>
</head>
<body>
<main id="report"></main>
<footer>
<p>Charts drawn with uPlot ${escapeHtml(/\(v[\d.]+\)/.exec(uplot.script)?.[0] ?? '')}, inlined under its licence:</p>
<pre class="licence">${escapeHtml(uplot.licence)}</pre>
</footer>
<script type="application/json" id="load-data">${data}</script>
<script>${uplot.script}</script>
<script>${DRAW_SCRIPT}</script>
</body>
</html>
`;
}

const PAGE_CSS = `
body { font: 14px/1.45 system-ui, sans-serif; color: #222; margin: 0 auto; max-width: 980px; padding: 16px 24px; }
h1 { font-size: 22px; margin: 8px 0 4px; } h2 { font-size: 18px; margin: 28px 0 6px; border-bottom: 1px solid #ddd; }
h3 { font-size: 15px; margin: 16px 0 6px; }
table { border-collapse: collapse; margin: 6px 0 12px; } td, th { padding: 2px 10px; border-bottom: 1px solid #eee; }
th { text-align: left; font-weight: 600; } td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.tables { display: flex; flex-wrap: wrap; gap: 0 32px; align-items: flex-start; }
.chart { margin: 8px 0 16px; min-height: 200px; }
.knee { font-size: 16px; background: #fff4e5; border-left: 4px solid #d62728; padding: 6px 10px; }
.interrupted { color: #a00; font-weight: 600; }
footer { margin-top: 40px; color: #666; font-size: 12px; } pre.licence { white-space: pre-wrap; }
`;

/** Runs in the page: draws every section from the embedded JSON. Plain ES5, no template literals. */
const DRAW_SCRIPT = `
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('load-data').textContent);
  var root = document.getElementById('report');
  var COLORS = { completed: '#2ca02c', failed: '#d62728', offered: '#1f77b4', p50: '#1f77b4', p90: '#ff7f0e', p99: '#d62728' };

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var key in attrs || {}) node.setAttribute(key, attrs[key]);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function shown(value) { return value === null || value === undefined ? 'none' : String(value); }
  /** rows: [label, field, value]; the value cell carries data-field for whoever checks it. */
  function fieldTable(parent, caption, rows) {
    var box = el('div');
    box.appendChild(el('h3', {}, caption));
    var table = el('table');
    rows.forEach(function (row) {
      var tr = el('tr');
      tr.appendChild(el('th', {}, row[0]));
      tr.appendChild(el('td', { 'class': 'n', 'data-field': row[1] }, shown(row[2])));
      if (row.length > 3) tr.appendChild(el('td', { 'class': 'n' }, row[3]));
      table.appendChild(tr);
    });
    box.appendChild(table);
    parent.appendChild(box);
  }
  function chart(parent, name, title, xLabel, yLabel, x, lines, kneeAt) {
    var box = el('div', { 'class': 'chart', 'data-chart': name });
    parent.appendChild(box);
    var width = Math.max(320, Math.min(930, root.clientWidth || 900));
    var opts = {
      title: title, width: width, height: 240,
      scales: { x: { time: false } },
      axes: [{ label: xLabel }, { label: yLabel, size: 60 }],
      series: [{ label: xLabel }].concat(lines.map(function (l) {
        return { label: l.label, stroke: l.color, width: 2, points: { show: x.length <= 40 } };
      })),
      hooks: {}
    };
    if (kneeAt !== null && kneeAt !== undefined) {
      opts.hooks.draw = [function (u) {
        var ctx = u.ctx, px = u.valToPos(kneeAt, 'x', true), r = window.devicePixelRatio || 1;
        ctx.save();
        ctx.strokeStyle = '#d62728'; ctx.fillStyle = '#d62728'; ctx.lineWidth = 2 * r;
        ctx.setLineDash([6 * r, 4 * r]);
        ctx.beginPath(); ctx.moveTo(px, u.bbox.top); ctx.lineTo(px, u.bbox.top + u.bbox.height); ctx.stroke();
        ctx.font = (12 * r) + 'px sans-serif';
        ctx.fillText('knee ' + kneeAt + '/s', px + 4 * r, u.bbox.top + 14 * r);
        ctx.restore();
      }];
    }
    new uPlot(opts, [x].concat(lines.map(function (l) { return l.values; })), box);
  }

  document.title = data.title;
  root.appendChild(el('h1', {}, data.title));
  if (data.intro) root.appendChild(el('p', {}, data.intro));

  data.sections.forEach(function (section, index) {
    var r = section.result, s = r.settings;
    var part = el('section', { 'data-section': String(index) });
    root.appendChild(part);
    part.appendChild(el('h2', {}, section.title));
    var shape = r.mode === 'closed' ? s.clients + ' fresh-process clients, closed loop'
      : r.mode === 'open' ? s.rate_per_s + ' fetches/s offered, open loop'
      : 'ramp from ' + s.ramp_from_per_s + ' to ' + s.ramp_to_per_s + ' fetches/s in ' + s.steps + ' steps, open loop';
    part.appendChild(el('p', {}, shape + ' against ' + s.target + ', ' + r.duration_s + ' s.'));
    if (r.interrupted) part.appendChild(el('p', { 'class': 'interrupted' }, 'Interrupted (Ctrl-C): the figures cover what ran.'));
    if (r.late_starts > 0) {
      var late = el('p', { 'class': 'interrupted' }, 'The generator started ');
      late.appendChild(el('span', { 'data-field': 'late_starts' }, String(r.late_starts)));
      late.appendChild(document.createTextNode(' fetches over 100 ms late (a busy machine): late fetches start in a bunch, and a throttle punishes bunches.'));
      part.appendChild(late);
    }

    if (r.mode === 'ramp') {
      var knee = el('p', { 'class': 'knee' });
      knee.appendChild(document.createTextNode('Knee: '));
      knee.appendChild(el('strong', { 'data-field': 'knee_fetches_per_s' }, shown(r.knee_fetches_per_s)));
      knee.appendChild(document.createTextNode(' fetches/s, the highest offered rate with fewer than 1% of fetches failed. Beyond it, IMDS sustained '));
      knee.appendChild(el('strong', { 'data-field': 'sustained_fetches_per_s' }, shown(r.sustained_fetches_per_s)));
      knee.appendChild(document.createTextNode(' completed fetches/s.'));
      part.appendChild(knee);
    }

    var tables = el('div', { 'class': 'tables' });
    part.appendChild(tables);
    fieldTable(tables, 'Summary', [
      ['credential fetches', 'fetches', r.fetches], ['completed', 'completed', r.completed], ['failed', 'failed', r.failed],
      ['HTTP requests sent', 'requests', r.requests], ['completed fetches/s', 'rate_per_s', r.rate_per_s],
      ['latency p50 (ms)', 'p50_ms', r.p50_ms], ['latency p90 (ms)', 'p90_ms', r.p90_ms],
      ['latency p99 (ms)', 'p99_ms', r.p99_ms], ['latency max (ms)', 'max_ms', r.max_ms], ['duration (s)', 'duration_s', r.duration_s]
    ]);
    var pct = function (n) { return r.fetches > 0 ? (100 * n / r.fetches).toFixed(1) + '%' : ''; };
    fieldTable(tables, 'Failures', [
      ['timeouts', 'timeouts', r.timeouts, pct(r.timeouts)], ['throttled (429)', 'throttled', r.throttled, pct(r.throttled)],
      ['other HTTP errors', 'http_errors', r.http_errors, pct(r.http_errors)],
      ['connection errors', 'connection_errors', r.connection_errors, pct(r.connection_errors)],
      ['200 but not credentials', 'bad_documents', r.bad_documents, pct(r.bad_documents)],
      ['not started (max clients)', 'not_started', r.not_started, pct(r.not_started)]
    ]);

    var t = r.series.map(function (p) { return p.t_s; });
    var perSecond = function (field) { return r.series.map(function (p) { return p.span_s > 0 ? Math.round(p[field] / p.span_s * 10) / 10 : 0; }); };
    var latency = function (field) { return r.series.map(function (p) { return p.completed + p.failed - p.not_started > 0 ? p[field] : null; }); };
    chart(part, 'throughput', 'Credential fetches per second', 'seconds', 'fetches/s', t, [
      { label: r.mode === 'closed' ? 'started' : 'offered', color: COLORS.offered, values: perSecond('offered') },
      { label: 'completed', color: COLORS.completed, values: perSecond('completed') },
      { label: 'failed', color: COLORS.failed, values: perSecond('failed') }
    ], null);
    chart(part, 'latency', 'Latency of the fetches that ended each second', 'seconds', 'ms', t, [
      { label: 'p50', color: COLORS.p50, values: latency('p50_ms') },
      { label: 'p90', color: COLORS.p90, values: latency('p90_ms') },
      { label: 'p99', color: COLORS.p99, values: latency('p99_ms') }
    ], null);

    if (r.steps && r.steps.length > 0) {
      if (r.mode === 'ramp') {
        var offered = r.steps.map(function (st) { return st.offered_per_s; });
        var column = function (field) { return r.steps.map(function (st) { return st[field]; }); };
        chart(part, 'ramp-failures', 'Failed fetches against offered rate', 'offered fetches/s', '% failed', offered, [
          { label: '% failed', color: COLORS.failed, values: column('failed_pct') }
        ], r.knee_fetches_per_s);
        chart(part, 'ramp-throughput', 'Completed fetches against offered rate', 'offered fetches/s', 'fetches/s', offered, [
          { label: 'completed/s', color: COLORS.completed, values: column('rate_per_s') }
        ], r.knee_fetches_per_s);
        chart(part, 'ramp-latency', 'Latency against offered rate', 'offered fetches/s', 'ms', offered, [
          { label: 'p50', color: COLORS.p50, values: column('p50_ms') },
          { label: 'p99', color: COLORS.p99, values: column('p99_ms') }
        ], r.knee_fetches_per_s);
      }
      part.appendChild(el('h3', {}, 'Steps'));
      var steps = el('table');
      var columns = [['offered/s', 'offered_per_s'], ['fetches', 'fetches'], ['completed/s', 'rate_per_s'], ['failed %', 'failed_pct'],
        ['timeouts', 'timeouts'], ['throttled', 'throttled'], ['not started', 'not_started'], ['late starts', 'late_starts'],
        ['p50 ms', 'p50_ms'], ['p99 ms', 'p99_ms']];
      var head = el('tr');
      columns.forEach(function (c) { head.appendChild(el('th', { 'class': 'n' }, c[0])); });
      steps.appendChild(head);
      r.steps.forEach(function (st, i) {
        var tr = el('tr', { 'data-step': String(i) });
        columns.forEach(function (c) { tr.appendChild(el('td', { 'class': 'n', 'data-field': c[1] }, shown(st[c[1]]))); });
        steps.appendChild(tr);
      });
      part.appendChild(steps);
    }

    var about = el('div', { 'class': 'tables' });
    part.appendChild(about);
    fieldTable(about, 'Settings', Object.keys(s).map(function (k) { return [k, 'settings.' + k, s[k]]; }));
    fieldTable(about, 'Machine', Object.keys(r.machine).map(function (k) { return [k, 'machine.' + k, r.machine[k]]; }));
  });
})();
`;
