// #/me: the household's own meter, made for a phone: balance and supply, power now, when the
// energy was used (day / week / month, peak vs off-peak) and the top-up form.

import { enc, get } from "../api.js";
import { decimal, money, num } from "../format.js";
import { card, fill, h, pageHead, problemBox, relayBadge, timeEl } from "../ui.js";
import { loadPanel } from "./load.js";
import { balanceView, topUpForm, unitLabel } from "./prepaid.js";

const REFRESH_MS = 5000;

export async function render({ main, scope, session }) {
  const meterIds = session.user.meter_ids || [];
  if (!meterIds.length) {
    main.append(pageHead("My meter"), h("p", { class: "alert alert-info" }, "No meter is linked to your login yet. Please contact your utility."));
    return;
  }
  let meterId = sessionStorage.getItem("metercom.me.meter");
  if (!meterIds.includes(meterId)) [meterId] = meterIds;

  const errors = h("div", { class: "page-errors" });
  const status = h("div", { class: "me-status" });
  const balanceHost = h("div", { id: "me-balance" });
  const nowHost = h("div", { class: "me-now", id: "me-now" });
  const usageHost = h("div");
  const topupHost = h("div");
  const chooser = meterIds.length > 1
    ? h(
        "div",
        { class: "field field-inline" },
        h("label", { for: "me-meter" }, "Meter"),
        h(
          "select",
          {
            id: "me-meter",
            onchange: (event) => {
              sessionStorage.setItem("metercom.me.meter", event.target.value);
              location.reload();
            },
          },
          meterIds.map((id) => h("option", { value: id, selected: id === meterId }, id)),
        ),
      )
    : null;

  main.append(
    pageHead("My meter", { subtitle: `Meter ${meterId}`, actions: chooser }),
    errors,
    h(
      "div",
      { class: "grid grid-me" },
      card("Balance", { id: "me-account" }, status, balanceHost, nowHost),
      card("Your usage", { id: "me-usage", className: "span-2" }, usageHost),
      card("Top up", { id: "me-topup" }, topupHost),
    ),
  );

  let account = null;
  try {
    const accounts = await get("prepaid/accounts", undefined, { signal: scope.signal });
    account = (Array.isArray(accounts) ? accounts : []).find((a) => a.meter_id === meterId) || null;
  } catch (error) {
    if (error?.name === "AbortError") return;
    if (error?.status !== 404) fill(errors, problemBox(error, { heading: "Your account could not be loaded" }));
  }

  const drawAccount = () => {
    if (!account) {
      fill(balanceHost, h("p", { class: "muted" }, "This meter is not prepaid."));
      fill(topupHost, h("p", { class: "muted" }, "Top-ups are for prepaid meters."));
      return;
    }
    fill(
      balanceHost,
      balanceView(account, "me-balance-value"),
      h(
        "dl",
        { class: "me-figures" },
        h("div", {}, h("dt", {}, "Topped up in total"), h("dd", { id: "me-total" }, money(account.total_topped_up, account.currency))),
        h("div", {}, h("dt", {}, "Last top-up"), h("dd", {}, account.last_top_up ? [money(account.last_top_up.amount, account.currency), " \u00b7 ", timeEl(account.last_top_up.at)] : "none yet")),
        h("div", {}, h("dt", {}, "Used so far"), h("dd", {}, `${decimal(account.consumed_units)} ${unitLabel(account)}`)),
      ),
    );
  };
  drawAccount();
  if (account) {
    fill(
      topupHost,
      topUpForm(
        account,
        (answer) => {
          if (answer?.account) account = answer.account;
          drawAccount();
          drawStatus();
        },
        { idPrefix: "me-topup" },
      ),
    );
  }

  let meter = null;
  const drawStatus = () => {
    const relay = account?.relay ?? meter?.relay ?? null;
    fill(
      status,
      h("span", { id: "me-supply" }, relayBadge(relay)),
      account?.disconnected_by_prepaid ? h("p", { class: "alert alert-error" }, "Your supply is off because the credit ran out. A top-up brings it back.") : null,
    );
  };
  drawStatus();

  loadPanel(usageHost, meterId, scope, { compact: true, period: "week" });

  scope.every(REFRESH_MS, async () => {
    try {
      const [nextMeter, live, nextAccount] = await Promise.all([
        get(`meters/${enc(meterId)}`, undefined, { signal: scope.signal }),
        get(`meters/${enc(meterId)}/live`, undefined, { signal: scope.signal }).catch(() => null),
        account ? get(`prepaid/accounts/${enc(account.id)}`, undefined, { signal: scope.signal }) : Promise.resolve(null),
      ]);
      meter = nextMeter;
      if (nextAccount) account = nextAccount;
      drawAccount();
      drawStatus();
      const power = live?.total?.power_w;
      fill(
        nowHost,
        h("span", { class: "me-now-label" }, "Using now"),
        h("span", { class: "me-now-value" }, num(power, 0, "W")),
        live?.at ? h("span", { class: "muted small" }, " \u00b7 ", timeEl(live.at)) : null,
      );
      fill(errors);
    } catch (error) {
      if (error?.name === "AbortError") return;
      fill(errors, problemBox(error, { heading: "Your meter could not be loaded" }));
    }
  });
}
