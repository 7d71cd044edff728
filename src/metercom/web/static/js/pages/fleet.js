// #/fleet: every meter with its state, last and next read, errors, relay and active alarms;
// a text filter and a state filter; refreshed every 5 s.

import { enc, get } from "../api.js";
import { showAlarmCount } from "../app.js";
import { DASH } from "../format.js";
import { PROTOCOLS, badge, fill, h, pageHead, problemBox, relayBadge, text, timeEl } from "../ui.js";

const REFRESH_MS = 5000;
const FILTER_KEY = "metercom.fleet.filter";

function tile(label, value, tone, id) {
  return h("div", { class: `tile tile-${tone}`, id }, h("span", { class: "tile-value" }, String(value)), h("span", { class: "tile-label" }, label));
}

function matches(meter, filter, alarmsByMeter) {
  if (filter.state === "alarm" && !alarmsByMeter.get(meter.id)) return false;
  if (filter.state && filter.state !== "alarm" && meter.state !== filter.state) return false;
  if (!filter.text) return true;
  const haystack = [meter.id, meter.protocol, PROTOCOLS[meter.protocol], meter.line, ...(meter.groups || []), meter.last_error, meter.prepaid_account]
    .filter(Boolean)
    .join(" ")
    .toLowerCase();
  return filter.text
    .toLowerCase()
    .split(/\s+/)
    .filter(Boolean)
    .every((word) => haystack.includes(word));
}

function row(meter, alarmCount) {
  const errors = meter.last_error
    ? h("span", { class: "error-text", title: meter.last_error }, meter.last_error)
    : h("span", { class: "muted" }, DASH);
  const failures = meter.consecutive_failures ? h("span", { class: "failures" }, ` (${meter.consecutive_failures}\u00d7)`) : null;
  return h(
    "tr",
    { dataset: { meter: meter.id, state: meter.state } },
    h("th", { scope: "row" }, h("a", { href: `#/meter/${enc(meter.id)}`, class: "meter-link" }, meter.id)),
    h("td", {}, PROTOCOLS[meter.protocol] || text(meter.protocol)),
    h("td", { class: "col-line" }, text(meter.line)),
    h("td", {}, badge(meter.state)),
    h("td", { class: "col-relay" }, meter.relay ? relayBadge(meter.relay) : h("span", { class: "muted" }, DASH)),
    h("td", {}, timeEl(meter.last_read)),
    h("td", {}, timeEl(meter.next_read)),
    h("td", { class: "col-error" }, errors, failures),
    h(
      "td",
      { class: "col-alarms" },
      alarmCount ? h("a", { href: "#/alarms", class: "badge badge-bad", "aria-label": `${alarmCount} active alarms` }, String(alarmCount)) : h("span", { class: "muted" }, "0"),
    ),
  );
}

export async function render({ main, scope }) {
  let filter = { text: "", state: "" };
  try {
    filter = { ...filter, ...JSON.parse(sessionStorage.getItem(FILTER_KEY) || "{}") };
  } catch {
    // a broken saved filter is simply dropped
  }
  const tiles = h("div", { class: "tiles", id: "fleet-tiles" });
  const errorHost = h("div", { class: "page-errors" });
  const search = h("input", {
    type: "search",
    id: "fleet-filter",
    placeholder: "Meter, line, group, error\u2026",
    value: filter.text,
    autocomplete: "off",
  });
  const stateSelect = h(
    "select",
    { id: "fleet-state" },
    [
      ["", "All states"],
      ["ok", "OK"],
      ["failing", "Failing"],
      ["quarantined", "Quarantined"],
      ["unknown", "Not read yet"],
      ["disabled", "Disabled"],
      ["alarm", "With active alarms"],
    ].map(([value, label]) => h("option", { value, selected: value === filter.state }, label)),
  );
  const count = h("p", { class: "muted table-count", id: "fleet-count", "aria-live": "polite" });
  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "table", id: "fleet-table" },
    h("caption", { class: "sr-only" }, "Meters of the fleet"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Meter", "Protocol", "Line", "State", "Relay", "Last read", "Next read", "Last error", "Alarms"].map((label) => h("th", { scope: "col" }, label)),
      ),
    ),
    tbody,
  );
  const updated = h("span", { class: "muted updated" });
  main.append(
    pageHead("Fleet", { subtitle: "Every meter the head-end reads, refreshed every 5 seconds.", actions: updated }),
    errorHost,
    tiles,
    h(
      "section",
      { class: "card", "aria-labelledby": "meters-title" },
      h(
        "div",
        { class: "card-head" },
        h("h2", { id: "meters-title" }, "Meters"),
        h(
          "div",
          { class: "filters", role: "search" },
          h("div", { class: "field field-inline" }, h("label", { for: "fleet-filter" }, "Filter"), search),
          h("div", { class: "field field-inline" }, h("label", { for: "fleet-state" }, "State"), stateSelect),
        ),
      ),
      h("div", { class: "table-wrap" }, table),
      count,
    ),
  );

  let fleet = null;
  let alarmsByMeter = new Map();

  const draw = () => {
    if (!fleet) return;
    const meters = fleet.meters || [];
    const states = (s) => meters.filter((m) => m.state === s).length;
    fill(
      tiles,
      tile("Meters", meters.length, "neutral", "tile-meters"),
      tile("OK", states("ok"), "ok", "tile-ok"),
      tile("Failing", states("failing"), "warn", "tile-failing"),
      tile("Quarantined", states("quarantined"), "bad", "tile-quarantined"),
      tile("Active alarms", fleet.alarms_active ?? 0, fleet.alarms_active ? "bad" : "neutral", "tile-alarms"),
    );
    const shown = meters.filter((m) => matches(m, filter, alarmsByMeter));
    fill(
      tbody,
      shown.length
        ? shown.map((m) => row(m, alarmsByMeter.get(m.id) || 0))
        : h("tr", {}, h("td", { colspan: 9, class: "empty" }, meters.length ? "No meter matches the filter." : "The configuration has no meters.")),
    );
    const summary = `${shown.length} of ${meters.length} meters shown`;
    if (count.textContent !== summary) count.textContent = summary; // announced only when it changes
  };

  const onFilter = () => {
    filter = { text: search.value.trim(), state: stateSelect.value };
    sessionStorage.setItem(FILTER_KEY, JSON.stringify(filter));
    draw();
  };
  search.addEventListener("input", onFilter);
  stateSelect.addEventListener("change", onFilter);

  scope.every(REFRESH_MS, async () => {
    try {
      const [nextFleet, alarms] = await Promise.all([
        get("fleet", undefined, { signal: scope.signal }),
        get("alarms", { active: true }, { signal: scope.signal }).catch(() => []),
      ]);
      fleet = nextFleet;
      alarmsByMeter = new Map();
      for (const alarm of Array.isArray(alarms) ? alarms : []) {
        if (alarm.meter_id) alarmsByMeter.set(alarm.meter_id, (alarmsByMeter.get(alarm.meter_id) || 0) + 1);
      }
      showAlarmCount(fleet.alarms_active ?? alarmsByMeter.size);
      fill(errorHost);
      fill(updated, `Updated ${new Date().toLocaleTimeString("en-GB")}${fleet.config_version ? ` \u00b7 configuration v${fleet.config_version}` : ""}`);
      draw();
    } catch (error) {
      if (error?.name === "AbortError") return;
      fill(errorHost, problemBox(error, { heading: "The fleet could not be loaded" }));
    }
  });
}

