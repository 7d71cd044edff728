// The load-curve panel shared by the meter page and the consumer view: day / week / month,
// earlier and later periods, a bar chart coloured peak vs off-peak with a legend, the peak and
// off-peak shares, and the numbers as a table.

import { enc, get } from "../api.js";
import { barChart, legend } from "../charts.js";
import { DASH, num, percent } from "../format.js";
import { fill, h, problemBox } from "../ui.js";

const PERIODS = [
  ["day", "Day"],
  ["week", "Week"],
  ["month", "Month"],
];

function rangeText(load) {
  if (!load?.start || !load?.end) return DASH;
  const zone = load.timezone || undefined;
  const format = (value, withTime) => {
    const options = withTime
      ? { day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: zone }
      : { weekday: "short", day: "numeric", month: "short", year: "numeric", timeZone: zone };
    try {
      return new Intl.DateTimeFormat("en-GB", options).format(new Date(value));
    } catch {
      return new Date(value).toLocaleString("en-GB");
    }
  };
  if (load.period === "day") return `${format(load.start, false)} (${load.timezone || "UTC"})`;
  const last = new Date(new Date(load.end).getTime() - 1);
  return `${format(load.start, false)} \u2013 ${format(last, false)}`;
}

/** A horizontal bar split into peak and off-peak shares. */
function shareBar(load) {
  const share = Number(load.peak_share);
  const known = Number.isFinite(share) && Number(load.total_kwh) > 0;
  const peak = known ? Math.round(share * 1000) / 10 : 0;
  return h(
    "div",
    {
      class: "share-bar",
      role: "img",
      "aria-label": known ? `Peak ${percent(share)} and off-peak ${percent(1 - share)} of the energy` : "No energy in this period",
    },
    h("span", { class: "share-peak", style: { width: `${known ? peak : 0}%` } }),
    h("span", { class: "share-offpeak", style: { width: `${known ? 100 - peak : 0}%` } }),
  );
}

/**
 * Mount the panel in `host` for `meterId`; returns nothing, cleans up with `scope`.
 * `compact` makes it fit a phone (consumer view).
 */
export function loadPanel(host, meterId, scope, { compact = false, period: first = "day" } = {}) {
  let period = first;
  let end = null; // null: the period holding now
  const tabs = h("div", { class: "segmented", role: "radiogroup", "aria-label": "Period" });
  const prev = h("button", { type: "button", class: "btn btn-secondary btn-small", "aria-label": "Earlier period" }, "\u2039");
  const next = h("button", { type: "button", class: "btn btn-secondary btn-small", "aria-label": "Later period" }, "\u203a");
  const range = h("span", { class: "load-range", "aria-live": "polite" });
  const chartHost = h("div", { class: "load-chart", id: compact ? "usage-chart" : "load-chart" });
  const summary = h("div", { class: "load-summary" });
  const table = h("details", { class: "data-table" });
  const errors = h("div");
  const legendHost = h("div", { class: "legend-row" });
  let chart = null;

  const drawTabs = () =>
    fill(
      tabs,
      PERIODS.map(([value, label]) =>
        h(
          "button",
          {
            type: "button",
            role: "radio",
            class: "segment",
            "aria-checked": value === period ? "true" : "false",
            tabindex: value === period ? "0" : "-1",
            dataset: { period: value },
            onclick: () => choose(value),
            onkeydown: (event) => {
              const index = PERIODS.findIndex(([p]) => p === period);
              const delta = event.key === "ArrowRight" || event.key === "ArrowDown" ? 1 : event.key === "ArrowLeft" || event.key === "ArrowUp" ? -1 : 0;
              if (!delta) return;
              event.preventDefault();
              choose(PERIODS[(index + delta + PERIODS.length) % PERIODS.length][0]);
              tabs.querySelector(`[data-period="${period}"]`)?.focus();
            },
          },
          label,
        ),
      ),
    );

  const choose = (value) => {
    period = value;
    end = null;
    current = null; // the arrows move from the answer, so they wait for it
    drawTabs();
    load();
  };

  let current = null;
  let asked = 0;
  const load = async () => {
    const serial = ++asked;
    prev.disabled = true;
    next.disabled = true;
    try {
      const query = { period };
      if (end) query.end = end.toISOString();
      const answer = await get(`meters/${enc(meterId)}/load`, query, { signal: scope.signal });
      if (serial !== asked) return; // a later choice is on its way
      current = answer;
      fill(errors);
      draw(answer);
    } catch (error) {
      if (error?.name === "AbortError") return;
      prev.disabled = !current;
      next.disabled = !end;
      fill(errors, problemBox(error, { heading: "The load curve could not be loaded" }));
    }
  };

  const draw = (answer) => {
    const hourly = answer.period === "day";
    const buckets = answer.buckets || [];
    if (!chart) {
      chart = barChart(chartHost, {
        buckets,
        hourly,
        timeZone: answer.timezone,
        unit: "kWh",
        title: `Energy per ${hourly ? "hour" : "day"}`,
        height: compact ? 200 : 240,
      });
      scope.onCleanup(chart.disconnect);
    } else {
      chart.update(buckets, { hourly, timeZone: answer.timezone });
    }
    fill(range, rangeText(answer));
    prev.disabled = false;
    next.disabled = !end;
    const peakLabel = answer.peak_hours ? `Peak (${answer.peak_hours.replace("-", "\u2013")})` : "Peak hours";
    const partly = buckets.some((b) => b.partial === true);
    fill(legendHost, legend([
      { label: peakLabel, color: "var(--peak)" },
      { label: "Off-peak", color: "var(--offpeak)" },
      ...(partly ? [{ label: "Partly measured (so far)", swatchClass: "swatch-partial" }] : []),
    ]));
    const share = answer.peak_share === null || answer.peak_share === undefined ? Number.NaN : Number(answer.peak_share);
    fill(
      summary,
      h(
        "dl",
        { class: "load-figures" },
        h("div", { class: "fig" }, h("dt", {}, "Total"), h("dd", { id: compact ? "usage-total" : "load-total" }, num(answer.total_kwh, 2, "kWh"))),
        h("div", { class: "fig fig-peak" }, h("dt", {}, "Peak"), h("dd", {}, num(answer.peak_kwh, 2, "kWh"), h("small", {}, ` ${percent(Number.isFinite(share) ? share : null)}`))),
        h(
          "div",
          { class: "fig fig-offpeak" },
          h("dt", {}, "Off-peak"),
          h("dd", {}, num(answer.offpeak_kwh, 2, "kWh"), h("small", {}, ` ${percent(Number.isFinite(share) ? 1 - share : null)}`)),
        ),
      ),
      shareBar(answer),
    );
    fill(
      table,
      h("summary", {}, "Show the numbers"),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "table table-compact" },
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, hourly ? "Hour" : "Day"), h("th", { scope: "col" }, "Energy (kWh)"), h("th", { scope: "col" }, hourly ? "Tariff" : "Split (kWh)"))),
          h(
            "tbody",
            {},
            buckets.map((bucket) =>
              h(
                "tr",
                {},
                h("td", {}, new Date(bucket.start).toLocaleString("en-GB", hourly ? { hour: "2-digit", minute: "2-digit", timeZone: answer.timezone } : { weekday: "short", day: "numeric", month: "short", timeZone: answer.timezone })),
                h("td", { class: "num" }, bucket.kwh === null || bucket.kwh === undefined ? DASH : `${num(bucket.kwh, 3)}${bucket.partial ? " (so far)" : ""}`),
                h("td", {}, hourly ? (bucket.peak ? "Peak" : "Off-peak") : bucket.peak_kwh === null || bucket.peak_kwh === undefined ? DASH : `peak ${num(bucket.peak_kwh, 3)} / off-peak ${num(bucket.offpeak_kwh, 3)}`),
              ),
            ),
          ),
        ),
      ),
    );
  };

  // Earlier / later: periods are local calendar days, weeks and months chosen by the server,
  // so a moment just before the start or just after the end names the neighbouring period.
  prev.addEventListener("click", () => {
    if (!current?.start) return;
    end = new Date(Date.parse(current.start) - 1000);
    load();
  });
  next.addEventListener("click", () => {
    if (!end || !current?.end) return;
    const later = new Date(Date.parse(current.end) + 1000);
    end = later.getTime() >= Date.now() ? null : later;
    load();
  });

  drawTabs();
  fill(
    host,
    h("div", { class: "load-toolbar" }, tabs, h("div", { class: "load-nav" }, prev, range, next)),
    errors,
    chartHost,
    legendHost,
    summary,
    table,
  );
  scope.every(60_000, () => (end ? null : load()));
}
