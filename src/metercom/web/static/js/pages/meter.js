// #/meter/<id>: live values per phase (polled, drawn over the session), load curves, events and
// commands (read now, time sync, disconnect/reconnect after a confirmation) with their progress.

import { enc, get, post } from "../api.js";
import { lineChart, legend } from "../charts.js";
import { DASH, dateTime, num, titleCase } from "../format.js";
import { PROTOCOLS, badge, card, confirmDialog, facts, fill, h, pageHead, problemBox, relayBadge, requestId, text, timeEl, toast } from "../ui.js";
import { loadPanel } from "./load.js";

const LIVE_MS = 5000;
const COMMAND_MS = 1000;
const MAX_SAMPLES = 720; // an hour of samples at 5 s
const TERMINAL = new Set(["succeeded", "failed", "rejected"]);
const PHASE_COLORS = ["var(--phase1)", "var(--phase2)", "var(--phase3)"];

const QUANTITIES = [
  { key: "power_w", label: "Power", unit: "W", digits: 0, total: true },
  { key: "voltage_v", label: "Voltage", unit: "V", digits: 1 },
  { key: "current_a", label: "Current", unit: "A", digits: 2 },
];

const COMMANDS = {
  read: { label: "Read now", verb: "Read", help: "Read the meter's plan objects now." },
  time_sync: { label: "Time sync", verb: "Time sync", help: "Compare the meter clock and set it if it is off." },
  disconnect: { label: "Disconnect", verb: "Disconnect", help: "Open the supply relay.", danger: true },
  reconnect: { label: "Reconnect", verb: "Reconnect", help: "Close the supply relay." },
};

const numOrNull = (v) => (v === null || v === undefined || v === "" ? null : Number(v));

/** Session history of live samples: [{t, live}] with distinct capture times. */
class LiveHistory {
  constructor() {
    this.samples = [];
  }

  add(live) {
    if (!live?.at) return false;
    const t = new Date(live.at);
    const last = this.samples.at(-1);
    if (last && last.t.getTime() >= t.getTime()) return false;
    this.samples.push({ t, live });
    if (this.samples.length > MAX_SAMPLES) this.samples.shift();
    return true;
  }

  series(quantity) {
    const phases = new Set();
    for (const s of this.samples) for (const p of s.live.phases || []) phases.add(p.phase);
    const out = [...phases].sort().map((phase) => ({
      name: `L${phase}`,
      color: PHASE_COLORS[(phase - 1) % 3],
      points: this.samples.map((s) => ({ t: s.t, v: numOrNull((s.live.phases || []).find((p) => p.phase === phase)?.[quantity.key]) })),
    }));
    if (quantity.total && out.length !== 1) {
      // Several phases: their sum too; none: the meter gives only the total.
      out.push({ name: "Total", color: "var(--total)", points: this.samples.map((s) => ({ t: s.t, v: numOrNull(s.live.total?.power_w) })) });
    }
    return out.filter((s) => s.points.some((p) => p.v !== null));
  }
}

function liveTable(live) {
  const phases = live?.phases || [];
  if (!phases.length) {
    return h("p", { class: "muted" }, live?.at ? "The meter gives no per-phase values." : "No instantaneous values stored yet.");
  }
  const columns = [
    ["Voltage", "voltage_v", "V", 1, "V"],
    ["Current", "current_a", "A", 2, "A"],
    ["Active power", "power_w", "W", 0, "W"],
    ["Power factor", "power_factor", "", 2, "PF"],
  ];
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "table table-live", id: "live-table" },
      h("caption", { class: "sr-only" }, "Instantaneous values per phase"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Phase"), columns.map(([label, , unit, , short]) =>
            h("th", { scope: "col", class: "num" }, h("span", { class: "long" }, unit ? `${label} (${unit})` : label), h("span", { class: "short", "aria-hidden": "true" }, short)),
          ))),
      h(
        "tbody",
        {},
        phases.map((p) =>
          h("tr", {}, h("th", { scope: "row" }, `L${p.phase}`), columns.map(([, key, , digits]) => h("td", { class: "num", dataset: { q: key, phase: p.phase } }, num(p[key], digits)))),
        ),
      ),
    ),
  );
}

function liveTiles(live) {
  const total = live?.total || {};
  const tile = (label, value, id) => h("div", { class: "metric", id }, h("span", { class: "metric-label" }, label), h("span", { class: "metric-value" }, value));
  return h(
    "div",
    { class: "metrics" },
    tile("Power", num(total.power_w, 0, "W"), "live-power"),
    tile("Power factor", num(total.power_factor, 2), "live-pf"),
    tile("Frequency", num(total.frequency_hz, 2, "Hz"), "live-frequency"),
    tile("Energy import", num(total.energy_import_kwh, 1, "kWh"), "live-energy"),
  );
}

function commandRow(command, actions) {
  const status = command.status;
  const pending = !TERMINAL.has(status);
  let outcome = command.error ? h("span", { class: "error-text" }, command.error) : null;
  if (!outcome && command.result && status === "succeeded") {
    const result = command.result;
    if (result.relay) outcome = `relay ${result.relay === "open" ? "open (supply off)" : "closed (supply on)"}`;
    else if (result.skew_s !== undefined) outcome = `clock off by ${Number(result.skew_s).toFixed(1)} s${result.set ? ", set" : ", within threshold"}`;
    else if (Array.isArray(result.readings)) outcome = `${result.readings.length} values read`;
  }
  return h(
    "li",
    { class: `command command-${status}`, dataset: { command: command.id, kind: command.kind, status } },
    h("span", { class: "command-kind" }, COMMANDS[command.kind]?.verb || titleCase(command.kind)),
    badge(status, pending ? { label: `${titleCase(status)}\u2026` } : {}),
    pending ? h("span", { class: "spinner", "aria-hidden": "true" }) : null,
    h("span", { class: "command-meta muted" }, `${command.requested_by || DASH} \u00b7 `, timeEl(command.requested_at)),
    outcome ? h("span", { class: "command-outcome" }, outcome) : null,
    actions ? h("span", { class: "command-actions" }, actions) : null,
  );
}

export async function render({ main, scope, params, session }) {
  const meterId = params[0];
  const head = h("div");
  const errors = h("div", { class: "page-errors" });
  main.append(head, errors);
  let meter;
  try {
    meter = await get(`meters/${enc(meterId)}`, undefined, { signal: scope.signal });
  } catch (error) {
    if (error?.name === "AbortError") return;
    fill(head, pageHead(`Meter ${meterId}`), problemBox(error, { heading: "This meter could not be loaded" }), h("p", {}, h("a", { href: "#/fleet" }, "Back to the fleet")));
    return;
  }

  let headKey = "";
  const drawHead = () => {
    // Redrawn only when something shown changed (keeps focus and screen readers in place).
    const key = JSON.stringify([meter.state, meter.relay, meter.prepaid_account, meter.groups, meter.line]);
    if (key === headKey) return;
    headKey = key;
    fill(
      head,
      h("nav", { class: "breadcrumb", "aria-label": "Breadcrumb" }, h("a", { href: "#/fleet" }, "Fleet"), h("span", { "aria-hidden": "true" }, " / "), h("span", { "aria-current": "page" }, meter.id)),
      pageHead(meter.id, {
        badges: [h("span", { id: "meter-state" }, badge(meter.state)), meter.relay ? h("span", { id: "meter-relay" }, relayBadge(meter.relay)) : null],
        subtitle: [PROTOCOLS[meter.protocol] || titleCase(meter.protocol), meter.line ? `line ${meter.line}` : null, (meter.groups || []).length ? `groups ${meter.groups.join(", ")}` : null].filter(Boolean).join(" \u00b7 "),
        actions: meter.prepaid_account ? h("a", { class: "btn btn-secondary", href: `#/prepaid/${enc(meter.prepaid_account)}` }, "Prepaid account") : null,
      }),
    );
  };
  drawHead();

  // -- live values --------------------------------------------------------------------------
  const history = new LiveHistory();
  let quantity = QUANTITIES[0];
  const liveAt = h("span", { class: "muted", id: "live-at" });
  const tiles = h("div");
  const phaseTable = h("div");
  const chartHost = h("div", { class: "live-chart", id: "live-chart" });
  const chartLegend = h("div", { class: "legend-row" });
  const liveErrors = h("div");
  const picker = h(
    "div",
    { class: "segmented", role: "group", "aria-label": "Quantity drawn" },
    QUANTITIES.map((q) =>
      h(
        "button",
        {
          type: "button",
          class: "segment",
          "aria-pressed": q === quantity ? "true" : "false",
          dataset: { quantity: q.key },
          onclick: (event) => {
            quantity = q;
            for (const b of picker.querySelectorAll("button")) b.setAttribute("aria-pressed", b === event.currentTarget ? "true" : "false");
            drawChart();
          },
        },
        q.label,
      ),
    ),
  );
  const chart = lineChart(chartHost, { series: [], unit: quantity.unit, title: "Live values" });
  scope.onCleanup(chart.disconnect);
  const drawChart = () => {
    const series = history.series(quantity);
    chart.update(series, { unit: quantity.unit });
    fill(chartLegend, legend(series.map((s) => ({ label: s.name, color: s.color }))));
  };

  // -- commands -------------------------------------------------------------------------------
  // Not a live region: it is redrawn on every poll; outcomes are announced by the toasts.
  const commandList = h("ul", { class: "commands", id: "command-list" });
  const commandErrors = h("div", { id: "command-errors" });
  let commands = [];
  const canOperate = session.canOperate;

  // A disconnect held for a second operator: anyone else who may operate approves or rejects.
  const decide = async (command, verdict) => {
    const verb = verdict === "approve" ? "Approve" : "Reject";
    const reason = h("input", { id: "decision-reason", maxlength: 200 });
    const ok = await confirmDialog({
      title: `${verb} the ${COMMANDS[command.kind]?.verb.toLowerCase() || command.kind} of ${meter.id}?`,
      body: h(
        "div",
        {},
        h("p", {}, `Requested by ${command.requested_by}${command.args?.reason ? `: ${command.args.reason}` : ""}.`),
        verdict === "reject" ? h("div", { class: "field" }, h("label", { for: "decision-reason" }, "Reason"), reason) : null,
      ),
      okLabel: verb,
      danger: verdict === "approve" && command.kind === "disconnect",
    });
    if (!ok) return;
    fill(commandErrors);
    try {
      const body = verdict === "reject" ? { reason: reason.value.trim() } : {};
      const record = await post(`commands/${enc(command.id)}/${verdict}`, body);
      commands = commands.map((c) => (c.id === command.id ? record : c));
      drawCommands();
      if (!TERMINAL.has(record.status)) follow(record.id);
    } catch (error) {
      fill(commandErrors, problemBox(error, { heading: `${verb} was not accepted` }));
    }
  };

  const actionsFor = (command) => {
    if (command.status !== "awaiting_approval" || !canOperate || command.requested_by === session.user.username) return null;
    return [
      h("button", { type: "button", class: "btn btn-small btn-danger-outline", onclick: () => decide(command, "approve") }, "Approve"),
      h("button", { type: "button", class: "btn btn-small btn-secondary", onclick: () => decide(command, "reject") }, "Reject"),
    ];
  };

  const drawCommands = () =>
    fill(commandList, commands.length ? commands.map((c) => commandRow(c, actionsFor(c))) : h("li", { class: "muted empty" }, "No commands sent to this meter yet."));

  const refreshCommands = async () => {
    const list = await get("commands", { meter_id: meter.id, limit: 6 }, { signal: scope.signal });
    commands = Array.isArray(list) ? list : [];
    drawCommands();
  };

  const refreshMeter = async () => {
    meter = { ...meter, ...(await get(`meters/${enc(meter.id)}`, undefined, { signal: scope.signal })) };
    drawHead();
    drawButtons();
  };

  const send = async (kind) => {
    const spec = COMMANDS[kind];
    const body = { kind, args: {}, request_id: requestId(kind) };
    if (kind === "read" && Array.isArray(meter.objects) && meter.objects.length) body.args.objects = meter.objects;
    if (kind === "disconnect" || kind === "reconnect") {
      const reason = h("input", { id: "command-reason", maxlength: 200, placeholder: kind === "disconnect" ? "e.g. maintenance, unpaid" : "e.g. paid, work finished" });
      const ok = await confirmDialog({
        title: `${spec.verb} ${meter.id}?`,
        body: h(
          "div",
          {},
          h(
            "p",
            {},
            kind === "disconnect"
              ? "This opens the supply relay: the premises lose power until the meter is reconnected."
              : "This closes the supply relay: power comes back to the premises.",
          ),
          h("div", { class: "field" }, h("label", { for: "command-reason" }, "Reason (recorded in the audit log)"), reason),
        ),
        okLabel: spec.verb,
        danger: kind === "disconnect",
      });
      if (!ok) return;
      body.confirm = true;
      if (reason.value.trim()) body.args.reason = reason.value.trim();
    }
    fill(commandErrors);
    try {
      const record = await post(`meters/${enc(meter.id)}/commands`, body);
      commands = [record, ...commands.filter((c) => c.id !== record.id)].slice(0, 6);
      drawCommands();
      toast(`${spec.verb} sent to ${meter.id}${record.status === "awaiting_approval" ? ": waiting for a second operator to approve" : ""}`);
      follow(record.id);
    } catch (error) {
      fill(commandErrors, problemBox(error, { heading: `${spec.verb} was not accepted` }));
    }
  };

  const following = new Set();
  const follow = (id) => {
    if (following.has(id)) return;
    following.add(id);
    const poll = async () => {
      if (!scope.alive) return;
      try {
        const record = await get(`commands/${enc(id)}`, undefined, { signal: scope.signal });
        commands = commands.map((c) => (c.id === id ? record : c));
        drawCommands();
        if (TERMINAL.has(record.status)) {
          following.delete(id);
          if (record.status === "succeeded") toast(`${COMMANDS[record.kind]?.verb || record.kind} on ${meter.id}: done`, "ok");
          else toast(`${COMMANDS[record.kind]?.verb || record.kind} on ${meter.id}: ${record.status}${record.error ? ` (${record.error})` : ""}`, "error");
          await refreshMeter();
          await pollLive();
          return;
        }
        if (record.status === "awaiting_approval") {
          following.delete(id);
          return;
        }
      } catch (error) {
        if (error?.name === "AbortError") return;
      }
      const timer = setTimeout(poll, COMMAND_MS);
      scope.onCleanup(() => clearTimeout(timer));
    };
    poll();
  };

  // Disconnect and reconnect only where metercom can switch a relay (MeterSummary.relay_capable;
  // a DLMS meter may learn it at its first read, so the row follows the meter's refreshes).
  const buttonRow = h("div", { class: "button-row", id: "command-buttons" });
  const relayNote = h("div");
  let relayShown = null;
  const drawButtons = () => {
    const capable = meter.relay_capable === true;
    if (capable === relayShown) return;
    relayShown = capable;
    fill(
      buttonRow,
      Object.entries(COMMANDS)
        .filter(([kind]) => capable || (kind !== "disconnect" && kind !== "reconnect"))
        .map(([kind, spec]) =>
          h(
            "button",
            {
              type: "button",
              class: `btn ${spec.danger ? "btn-danger-outline" : "btn-secondary"}`,
              id: `cmd-${kind.replace("_", "-")}`,
              disabled: !canOperate,
              title: spec.help,
              onclick: () => send(kind),
            },
            spec.label,
          ),
        ),
    );
    fill(relayNote, capable ? null : h("p", { class: "muted small", id: "no-relay" }, "This meter has no supply relay metercom can switch, so there is no disconnect or reconnect."));
  };
  drawButtons();

  // -- events ---------------------------------------------------------------------------------
  const eventsBody = h("div", { id: "events" });
  const refreshEvents = async () => {
    let events;
    try {
      events = await get(`meters/${enc(meter.id)}/events`, { limit: 20 }, { signal: scope.signal });
    } catch (error) {
      if (error?.name !== "AbortError") fill(eventsBody, problemBox(error, { heading: "The events could not be loaded" }));
      return;
    }
    const list = Array.isArray(events) ? events : events?.events || [];
    fill(
      eventsBody,
      list.length
        ? h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              { class: "table table-compact" },
              h("thead", {}, h("tr", {}, ["Time", "Log", "Code", "Description"].map((l) => h("th", { scope: "col" }, l)))),
              h(
                "tbody",
                {},
                list.map((e) => h("tr", {}, h("td", {}, h("time", { datetime: e.time }, dateTime(e.time))), h("td", {}, text(e.log)), h("td", { class: "num" }, text(e.code)), h("td", {}, text(e.description)))),
              ),
            ),
          )
        : h("p", { class: "muted" }, "No events stored for this meter."),
    );
  };

  // -- layout: the measurements on the left, what to do and what it is on the right -----------
  const loadHost = h("div");
  const objects = Array.isArray(meter.objects) ? meter.objects : [];
  main.append(
    h(
      "div",
      { class: "layout-meter" },
      h(
        "div",
        { class: "col-main" },
        card(
          "Live values",
          { id: "live", actions: liveAt },
          liveErrors,
          tiles,
          phaseTable,
          h("div", { class: "chart-toolbar" }, h("h3", { class: "chart-title" }, "This session"), picker),
          chartHost,
          chartLegend,
        ),
        card("Load curve", { id: "load" }, loadHost),
        card("Events", { id: "events-card" }, eventsBody),
      ),
      h(
        "div",
        { class: "col-side" },
        card(
          "Commands",
          { id: "commands" },
          buttonRow,
          relayNote,
          canOperate ? null : h("p", { class: "muted small" }, `Your role (${session.user.role}) may look but not send commands.`),
          commandErrors,
          h("h3", { class: "subhead" }, "Progress"),
          commandList,
        ),
        card(
          "Meter",
          { id: "meter-facts" },
          facts([
            ["Protocol", PROTOCOLS[meter.protocol] || text(meter.protocol)],
            ["Line", text(meter.line)],
            ["Description", text(meter.description)],
            ["Last read", timeEl(meter.last_read)],
            ["Next read", timeEl(meter.next_read)],
            ["Reads", `${meter.reads_ok ?? DASH} ok, ${meter.reads_failed ?? DASH} failed`],
            ["Last error", meter.last_error ? h("span", { class: "error-text" }, meter.last_error) : DASH],
            ["Plans", (meter.plans || []).length ? meter.plans.join(", ") : DASH],
            [
              "Objects",
              objects.length
                ? h("details", { class: "objects" }, h("summary", {}, `${objects.length} OBIS codes`), h("ul", { class: "mono obis-list" }, objects.map((o) => h("li", {}, o))))
                : DASH,
            ],
            ["Stored events", text(meter.events)],
          ]),
        ),
      ),
    ),
  );

  const pollLive = async () => {
    try {
      const live = await get(`meters/${enc(meter.id)}/live`, undefined, { signal: scope.signal });
      fill(liveErrors);
      fill(liveAt, live?.at ? ["Captured ", timeEl(live.at)] : "");
      fill(tiles, liveTiles(live));
      fill(phaseTable, liveTable(live));
      if (history.add(live)) drawChart();
    } catch (error) {
      if (error?.name === "AbortError") return;
      fill(liveErrors, problemBox(error, { heading: "Live values could not be loaded" }));
    }
  };

  loadPanel(loadHost, meter.id, scope);
  scope.every(LIVE_MS, pollLive);
  let listed = false;
  scope.every(LIVE_MS, async () => {
    const finished = () => commands.filter((c) => TERMINAL.has(c.status)).map((c) => c.id).join();
    const before = finished();
    await refreshCommands();
    for (const c of commands) if (!TERMINAL.has(c.status) && c.status !== "awaiting_approval") follow(c.id);
    // A command finished elsewhere (approved by another operator, sent from another tab).
    if (listed && finished() !== before) await refreshMeter();
    listed = true;
  }, { now: true });
  scope.every(LIVE_MS * 2, refreshMeter, { now: false });
  scope.every(30_000, refreshEvents);
}
