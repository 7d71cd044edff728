// #/alarms: active (or all) alarms, most recent first; operators acknowledge with a note.

import { enc, get, post } from "../api.js";
import { showAlarmCount } from "../app.js";
import { DASH, titleCase } from "../format.js";
import { badge, confirmDialog, fill, h, pageHead, problemBox, text, timeEl, toast } from "../ui.js";

const REFRESH_MS = 5000;

export async function render({ main, scope, session }) {
  let activeOnly = true;
  const errors = h("div", { class: "page-errors" });
  const body = h("div");
  const toggle = h(
    "div",
    { class: "segmented", role: "group", "aria-label": "Which alarms" },
    [
      [true, "Active"],
      [false, "All"],
    ].map(([value, label]) =>
      h(
        "button",
        {
          type: "button",
          class: "segment",
          "aria-pressed": value === activeOnly ? "true" : "false",
          dataset: { active: String(value) },
          onclick: (event) => {
            activeOnly = value;
            for (const b of toggle.querySelectorAll("button")) b.setAttribute("aria-pressed", b === event.currentTarget ? "true" : "false");
            refresh();
          },
        },
        label,
      ),
    ),
  );
  main.append(
    pageHead("Alarms", { subtitle: "Meters unavailable, events, rules, neutral faults and prepaid warnings.", actions: toggle }),
    errors,
    h("section", { class: "card", "aria-labelledby": "alarms-title" }, h("div", { class: "card-head" }, h("h2", { id: "alarms-title" }, "Alarms")), body),
  );

  const acknowledge = async (alarm) => {
    const note = h("textarea", { id: "ack-note", rows: 3, maxlength: 500, placeholder: "e.g. crew on the way" });
    const ok = await confirmDialog({
      title: `Acknowledge ${titleCase(alarm.kind)} on ${alarm.meter_id || "the fleet"}?`,
      body: h("div", {}, h("p", {}, alarm.message || ""), h("div", { class: "field" }, h("label", { for: "ack-note" }, "Note (optional)"), note)),
      okLabel: "Acknowledge",
    });
    if (!ok) return;
    try {
      await post(`alarms/${enc(alarm.id)}/ack`, { note: note.value.trim() });
      toast("Alarm acknowledged", "ok");
      fill(errors);
      await refresh();
    } catch (error) {
      fill(errors, problemBox(error, { heading: "The alarm was not acknowledged" }));
    }
  };

  const draw = (alarms) => {
    if (!alarms.length) {
      fill(body, h("p", { class: "empty-state", id: "alarms-empty" }, activeOnly ? "No active alarms. All quiet." : "No alarms recorded."));
      return;
    }
    fill(
      body,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "table", id: "alarms-table" },
          h("caption", { class: "sr-only" }, activeOnly ? "Active alarms" : "All alarms"),
          h("thead", {}, h("tr", {}, ["Severity", "Alarm", "Meter", "Message", "First", "Last", "Count", "State", ""].map((l) => h("th", { scope: "col" }, l)))),
          h(
            "tbody",
            {},
            alarms.map((alarm) =>
              h(
                "tr",
                { dataset: { alarm: alarm.id, state: alarm.state } },
                h("td", {}, badge(alarm.severity || "info")),
                h("td", { class: "nowrap" }, titleCase(alarm.kind)),
                h("td", { class: "nowrap" }, alarm.meter_id ? h("a", { href: `#/meter/${enc(alarm.meter_id)}` }, alarm.meter_id) : DASH),
                h("td", { class: "col-message" }, h("span", { class: "clamp", title: alarm.message || "" }, text(alarm.message))),
                h("td", { class: "nowrap" }, timeEl(alarm.first_at)),
                h("td", { class: "nowrap" }, timeEl(alarm.last_at)),
                h("td", { class: "num" }, text(alarm.count)),
                h(
                  "td",
                  {},
                  badge(alarm.state),
                  alarm.acknowledged_by ? h("div", { class: "muted small" }, `by ${alarm.acknowledged_by}`) : null,
                ),
                h(
                  "td",
                  { class: "col-action" },
                  session.canOperate && !alarm.acknowledged_at && !alarm.cleared_at
                    ? h("button", { type: "button", class: "btn btn-secondary btn-small", onclick: () => acknowledge(alarm), "aria-label": `Acknowledge ${titleCase(alarm.kind)} on ${alarm.meter_id || "fleet"}` }, "Acknowledge")
                    : null,
                ),
              ),
            ),
          ),
        ),
      ),
    );
  };

  const refresh = async () => {
    try {
      const alarms = await get("alarms", { active: activeOnly ? true : undefined, limit: 200 }, { signal: scope.signal });
      const list = Array.isArray(alarms) ? alarms : [];
      if (activeOnly) showAlarmCount(list.length);
      fill(errors);
      draw(list);
    } catch (error) {
      if (error?.name === "AbortError") return;
      fill(errors, problemBox(error, { heading: "The alarms could not be loaded" }));
    }
  };
  scope.every(REFRESH_MS, refresh);
}
