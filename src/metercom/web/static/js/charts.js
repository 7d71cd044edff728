// Our own small SVG charts: a time line chart (live values over the session) and a bar chart
// (load curves, peak and off-peak coloured). No library: scales, "nice" ticks, axes with units,
// a legend and an accessible description are drawn here. Each chart redraws when its box
// changes size, so it fits a phone as well as a wide screen.

const NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs = {}, text) {
  const element = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) element.setAttribute(key, String(value));
  }
  if (text !== undefined) element.textContent = text;
  return element;
}

/** Round `value` to 1, 2, 2.5 or 5 times a power of ten. */
function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const fraction = raw / power;
  const nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 2.5 ? 2.5 : fraction <= 5 ? 5 : 10;
  return nice * power;
}

/** Ticks covering [min, max] with about `count` steps; returns {min, max, ticks, step}. */
export function niceScale(min, max, count = 5) {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return { min: 0, max: 1, ticks: [0, 1], step: 1 };
  if (min === max) {
    const pad = Math.abs(min) > 0 ? Math.abs(min) * 0.05 : 1;
    min -= pad;
    max += pad;
  }
  const step = niceStep(max - min, count);
  const lo = Math.floor(min / step) * step;
  const hi = Math.ceil(max / step) * step;
  const ticks = [];
  for (let v = lo; v <= hi + step / 2; v += step) ticks.push(Number(v.toFixed(10)));
  return { min: lo, max: hi, ticks, step };
}

/** Decimals that show every tick of `step` exactly (0.25 -> 2, 0.5 -> 1, 2 -> 0). */
function decimalsFor(step) {
  for (let digits = 0; digits < 4; digits += 1) {
    const scaled = step * 10 ** digits;
    if (Math.abs(scaled - Math.round(scaled)) < 1e-9) return digits;
  }
  return 4;
}

function formatTick(value, step) {
  return value.toLocaleString("en-GB", {
    minimumFractionDigits: decimalsFor(step),
    maximumFractionDigits: decimalsFor(step),
  });
}

const pad2 = (n) => String(n).padStart(2, "0");

const TIME_STEPS = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600].map((s) => s * 1000);

/**
 * Draw with `draw(svg, width)` into `host` now and whenever the host's width changes.
 * Returns {redraw(), disconnect()}.
 */
function responsive(host, height, label, draw) {
  host.classList.add("chart-host");
  let lastWidth = 0;
  const render = () => {
    const width = Math.max(260, Math.floor(host.clientWidth || 600));
    lastWidth = width;
    const svg = svgEl("svg", {
      class: "chart",
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      role: "img",
      "aria-label": label(),
    });
    draw(svg, width, height);
    const old = host.querySelector(":scope > svg.chart");
    if (old) old.replaceWith(svg);
    else host.prepend(svg);
  };
  const observer = typeof ResizeObserver === "function"
    ? new ResizeObserver(() => {
      if (Math.floor(host.clientWidth) !== lastWidth) render();
    })
    : null;
  observer?.observe(host);
  render();
  return { redraw: render, disconnect: () => observer?.disconnect() };
}

function yAxis(svg, scale, y, left, right, unit) {
  const grid = svgEl("g", { class: "grid" });
  const labels = svgEl("g", { class: "axis axis-y" });
  for (const tick of scale.ticks) {
    const py = y(tick);
    grid.append(svgEl("line", { x1: left, x2: right, y1: py, y2: py }));
    labels.append(svgEl("text", { x: left - 8, y: py, "text-anchor": "end", "dominant-baseline": "middle" }, formatTick(tick, scale.step)));
  }
  labels.append(svgEl("text", { class: "axis-unit", x: left - 8, y: 12, "text-anchor": "end" }, unit));
  svg.append(grid, labels);
}

/**
 * A line chart of time series.
 *   series: [{name, color, points: [{t: Date, v: number|null}]}]
 *   unit: the y axis unit ("W", "V", "A", ...); title: what it shows (for the description).
 */
export function lineChart(host, { series = [], unit = "", title = "Chart", height = 240 } = {}) {
  let data = series;
  const label = () => {
    const count = data.reduce((n, s) => n + s.points.filter((p) => p.v !== null).length, 0);
    return `${title}: line chart, ${data.length} series, ${count} points, unit ${unit}`;
  };
  const draw = (svg, width, chartHeight) => {
    svg.classList.add("chart-line");
    const margin = { top: 22, right: 16, bottom: 30, left: 58 };
    const left = margin.left;
    const right = width - margin.right;
    const top = margin.top;
    const bottom = chartHeight - margin.bottom;
    const points = data.flatMap((s) => s.points.filter((p) => p.v !== null && Number.isFinite(p.v)));
    if (!points.length) {
      svg.append(svgEl("text", { class: "chart-empty", x: width / 2, y: chartHeight / 2, "text-anchor": "middle" }, "Waiting for values\u2026"));
      return;
    }
    let t0 = Math.min(...points.map((p) => p.t.getTime()));
    let t1 = Math.max(...points.map((p) => p.t.getTime()));
    if (t1 - t0 < 10_000) t0 = t1 - 60_000; // a lone sample: a minute's axis, newest at the right
    const scale = niceScale(Math.min(...points.map((p) => p.v)), Math.max(...points.map((p) => p.v)), 4);
    const x = (t) => left + ((t - t0) / (t1 - t0)) * (right - left);
    const y = (v) => bottom - ((v - scale.min) / (scale.max - scale.min)) * (bottom - top);
    yAxis(svg, scale, y, left, right, unit);
    const xAxis = svgEl("g", { class: "axis axis-x" });
    xAxis.append(svgEl("line", { class: "axis-line", x1: left, x2: right, y1: bottom, y2: bottom }));
    // Time ticks on round steps (10 s, 30 s, 1 min, ...), as many as fit.
    const room = Math.max(2, Math.floor((right - left) / 80));
    const step = TIME_STEPS.find((ms) => (t1 - t0) / ms <= room) || TIME_STEPS.at(-1);
    const showSeconds = step < 60_000;
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
      const date = new Date(t);
      const px = x(t);
      xAxis.append(svgEl("line", { class: "tick", x1: px, x2: px, y1: bottom, y2: bottom + 4 }));
      const label = `${pad2(date.getHours())}:${pad2(date.getMinutes())}${showSeconds ? `:${pad2(date.getSeconds())}` : ""}`;
      const anchor = px - left < 24 ? "start" : right - px < 24 ? "end" : "middle";
      xAxis.append(svgEl("text", { x: px, y: bottom + 18, "text-anchor": anchor }, label));
    }
    svg.append(xAxis);
    data.forEach((s, index) => {
      const group = svgEl("g", { class: "series", "data-series": s.name });
      let d = "";
      let pen = false;
      for (const p of s.points) {
        if (p.v === null || !Number.isFinite(p.v)) {
          pen = false;
          continue;
        }
        d += `${pen ? "L" : "M"}${x(p.t.getTime()).toFixed(1)},${y(p.v).toFixed(1)}`;
        pen = true;
      }
      // Colours through the CSSOM, not style attributes: the API's CSP allows no inline styles.
      const line = svgEl("path", { class: "series-line", d });
      line.style.stroke = s.color;
      group.append(line);
      for (const p of s.points) {
        if (p.v === null || !Number.isFinite(p.v)) continue;
        const dot = svgEl("circle", {
          class: "point",
          cx: x(p.t.getTime()).toFixed(1),
          cy: y(p.v).toFixed(1),
          r: 3,
          "data-value": p.v,
          "data-index": index,
        });
        dot.style.fill = s.color;
        dot.append(svgEl("title", {}, `${s.name} ${p.t.toLocaleTimeString("en-GB")}: ${formatTick(p.v, scale.step / 10)} ${unit}`));
        group.append(dot);
      }
      svg.append(group);
    });
  };
  const chart = responsive(host, height, label, draw);
  return {
    update(next, options = {}) {
      data = next;
      if (options.unit !== undefined) unit = options.unit;
      chart.redraw();
    },
    disconnect: chart.disconnect,
  };
}

const isNumber = (v) => v !== null && v !== undefined && Number.isFinite(Number(v));

const WEEKDAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/** The x label of a load bucket: the hour for hourly buckets, weekday/day for daily ones. */
export function bucketLabel(bucket, hourly, timeZone) {
  const date = new Date(bucket.start);
  const options = hourly
    ? { hour: "2-digit", hourCycle: "h23", timeZone }
    : { weekday: "short", day: "numeric", timeZone };
  try {
    return new Intl.DateTimeFormat("en-GB", options).format(date);
  } catch {
    return hourly ? pad2(date.getHours()) : `${WEEKDAYS[date.getDay()]} ${date.getDate()}`;
  }
}

export const PEAK_COLOR = "var(--peak)";
export const OFFPEAK_COLOR = "var(--offpeak)";

/**
 * A bar chart of load buckets: [{start, end, kwh (number|null), peak (bool), peak_kwh?,
 * offpeak_kwh?, partial?}]. Hourly bars take the colour of their tariff period; daily bars stack
 * their off-peak and peak energy. Partial buckets (the current one so far, or where the data
 * starts) are drawn lighter with a dashed outline. Missing data is marked by a grey stub.
 */
export function barChart(host, { buckets = [], unit = "kWh", title = "Load", hourly = true, timeZone, height = 240 } = {}) {
  let data = buckets;
  const label = () => {
    const known = data.filter((b) => b.kwh !== null && b.kwh !== undefined);
    const total = known.reduce((sum, b) => sum + Number(b.kwh), 0);
    return `${title}: bar chart of ${data.length} ${hourly ? "hours" : "days"}, ${known.length} with data, total ${total.toFixed(2)} ${unit}; peak bars orange, off-peak bars blue`;
  };
  const draw = (svg, width, chartHeight) => {
    svg.classList.add("chart-bar");
    const margin = { top: 22, right: 12, bottom: 30, left: 52 };
    const left = margin.left;
    const right = width - margin.right;
    const top = margin.top;
    const bottom = chartHeight - margin.bottom;
    if (!data.length) {
      svg.append(svgEl("text", { class: "chart-empty", x: width / 2, y: chartHeight / 2, "text-anchor": "middle" }, "No data for this period"));
      return;
    }
    const values = data.map((b) => (b.kwh === null || b.kwh === undefined ? null : Number(b.kwh)));
    const max = Math.max(0, ...values.filter((v) => v !== null));
    const scale = niceScale(0, max > 0 ? max : 1, 4);
    const y = (v) => bottom - ((v - scale.min) / (scale.max - scale.min)) * (bottom - top);
    yAxis(svg, scale, y, left, right, unit);
    const slot = (right - left) / data.length;
    const barWidth = Math.max(2, Math.min(36, slot * 0.72));
    const bars = svgEl("g", { class: "bars" });
    const xAxis = svgEl("g", { class: "axis axis-x" });
    xAxis.append(svgEl("line", { class: "axis-line", x1: left, x2: right, y1: bottom, y2: bottom }));
    const every = Math.max(1, Math.ceil(44 / slot));
    data.forEach((bucket, i) => {
      const cx = left + slot * (i + 0.5);
      const partial = bucket.partial === true;
      const axisName = bucketLabel(bucket, hourly, timeZone);
      const name = `${axisName}${partial ? " (partly measured, so far)" : ""}`;
      const extra = partial ? " bar-partial" : "";
      const value = values[i];
      if (value === null && Date.parse(bucket.start) > Date.now()) {
        // Still to come: nothing drawn.
      } else if (value === null) {
        const gap = svgEl("rect", { class: "bar bar-missing", x: (cx - barWidth / 2).toFixed(1), y: bottom - 3, width: barWidth.toFixed(1), height: 3 });
        gap.append(svgEl("title", {}, `${name}: no data`));
        bars.append(gap);
      } else if (!hourly && isNumber(bucket.peak_kwh) && isNumber(bucket.offpeak_kwh)) {
        // A day: off-peak energy at the bottom, peak energy stacked on top.
        const off = Number(bucket.offpeak_kwh);
        const on = Number(bucket.peak_kwh);
        const group = svgEl("g", { class: `bar-stack${extra}`, "data-kwh": value, "data-partial": partial ? "true" : "false" });
        const yOff = y(off);
        const yTop = y(off + on);
        group.append(
          svgEl("rect", { class: `bar bar-offpeak${extra}`, x: (cx - barWidth / 2).toFixed(1), y: yOff.toFixed(1), width: barWidth.toFixed(1), height: Math.max(0, bottom - yOff).toFixed(1), "data-kwh": off, "data-peak": "false" }),
          svgEl("rect", { class: `bar bar-peak${extra}`, x: (cx - barWidth / 2).toFixed(1), y: yTop.toFixed(1), width: barWidth.toFixed(1), height: Math.max(0, yOff - yTop).toFixed(1), "data-kwh": on, "data-peak": "true" }),
        );
        group.append(svgEl("title", {}, `${name}: ${value.toFixed(2)} ${unit} (peak ${on.toFixed(2)}, off-peak ${off.toFixed(2)})`));
        bars.append(group);
      } else {
        const py = y(value);
        const bar = svgEl("rect", {
          class: `bar ${bucket.peak ? "bar-peak" : "bar-offpeak"}${extra}`,
          x: (cx - barWidth / 2).toFixed(1),
          y: py.toFixed(1),
          width: barWidth.toFixed(1),
          height: Math.max(value > 0 ? 1 : 0, bottom - py).toFixed(1),
          "data-kwh": value,
          "data-peak": bucket.peak ? "true" : "false",
          "data-partial": partial ? "true" : "false",
        });
        bar.append(svgEl("title", {}, `${name}: ${value.toFixed(3)} ${unit} (${bucket.peak ? "peak" : "off-peak"})`));
        bars.append(bar);
      }
      if (i % every === 0) {
        xAxis.append(svgEl("text", { x: cx, y: bottom + 18, "text-anchor": "middle" }, axisName));
      }
    });
    svg.append(bars, xAxis);
    if (values.every((v) => v === null)) {
      svg.append(svgEl("text", { class: "chart-empty", x: (left + right) / 2, y: (top + bottom) / 2, "text-anchor": "middle" }, "No complete measurements in this period yet"));
    }
  };
  const chart = responsive(host, height, label, draw);
  return {
    update(next, options = {}) {
      data = next;
      if (options.hourly !== undefined) hourly = options.hourly;
      if (options.timeZone !== undefined) timeZone = options.timeZone;
      chart.redraw();
    },
    disconnect: chart.disconnect,
  };
}

/** A legend: [{label, color, swatchClass?}] as an HTML list. */
export function legend(items) {
  const list = document.createElement("ul");
  list.className = "legend";
  for (const item of items) {
    const entry = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = item.swatchClass ? `swatch ${item.swatchClass}` : "swatch";
    if (item.color) swatch.style.background = item.color;
    swatch.setAttribute("aria-hidden", "true");
    entry.append(swatch, document.createTextNode(item.label));
    list.append(entry);
  }
  return list;
}
