// #/prepaid: the prepaid accounts; #/prepaid/<account or meter id>: one account with its meter
// number, balance, totals, top-ups and the top-up form. The form is shared with the consumer view.

import { enc, get, post } from "../api.js";
import { DASH, dateTime, decimal, money } from "../format.js";
import { card, facts, fill, h, pageHead, problemBox, relayBadge, requestId, text, timeEl, toast } from "../ui.js";

const REFRESH_MS = 5000;
const AMOUNT = /^\d{1,9}(\.\d{1,2})?$/;

export function unitLabel(account) {
  const unit = account?.unit || "unit";
  return unit === "unit" ? "units" : unit;
}

/** The balance as a big number with its unit; negative balances (debt) are marked. */
export function balanceView(account, id = "balance") {
  const negative = String(account.balance_units ?? "").startsWith("-");
  return h(
    "div",
    { class: `balance ${negative ? "balance-negative" : ""}`.trim() },
    h("span", { class: "balance-label" }, "Balance"),
    h("span", { class: "balance-value", id, dataset: { value: account.balance_units ?? "" } }, decimal(account.balance_units)),
    h("span", { class: "balance-unit" }, unitLabel(account)),
  );
}

/** The tariff's accepted amounts (a top-up table), or its price per kWh, as one sentence. */
export function tariffHint(account) {
  const tariff = account?.tariff;
  const rows = Array.isArray(tariff?.amounts) ? tariff.amounts : [];
  const tail = " The same payment is never credited twice.";
  if (tariff?.kind === "table" && rows.length) {
    const listed = rows.map((r) => `${money(r.amount, account.currency)} → ${decimal(r.credit_units)}`).join(", ");
    if (tariff.between_rows === "interpolate") {
      return `Any amount from ${money(rows[0].amount, account.currency)} to ${money(rows.at(-1).amount, account.currency)}; the table: ${listed} ${unitLabel(account)}.${tail}`;
    }
    return `Accepted amounts: ${listed} ${unitLabel(account)}.${tail}`;
  }
  if (tariff?.price_per_kwh) return `The balance is money, charged at ${money(tariff.price_per_kwh, account.currency)} per kWh.${tail}`;
  return `The credit follows the tariff.${tail}`;
}

/** Buttons that fill in one of the tariff table's amounts. */
function amountChoices(account, input, idPrefix) {
  const rows = account?.tariff?.kind === "table" && Array.isArray(account.tariff.amounts) ? account.tariff.amounts : [];
  if (!rows.length) return null;
  return h(
    "div",
    { class: "amount-choices", role: "group", "aria-label": "Accepted amounts", id: `${idPrefix}-choices` },
    rows.map((row) =>
      h(
        "button",
        {
          type: "button",
          class: "btn btn-secondary btn-small",
          dataset: { amount: row.amount },
          "aria-label": `${money(row.amount, account.currency)} for ${decimal(row.credit_units)} ${unitLabel(account)}`,
          onclick: () => {
            input.value = row.amount;
            input.removeAttribute("aria-invalid");
            input.focus();
          },
        },
        money(row.amount, account.currency),
      ),
    ),
  );
}

/**
 * The top-up form: amount in the account's currency, an idempotency key per submission (kept
 * when the request failed on the way, so a retry cannot credit twice), quick choices of the
 * tariff table's amounts, and the API's problem when refused (a 422 naming the accepted
 * amounts; nothing is credited). `onDone(answer)` gets {command, account}.
 */
export function topUpForm(account, onDone, { idPrefix = "topup" } = {}) {
  const amountId = `${idPrefix}-amount`;
  const amount = h("input", {
    id: amountId,
    name: "amount",
    inputmode: "decimal",
    autocomplete: "off",
    required: true,
    placeholder: "10.00",
    "aria-describedby": `${idPrefix}-hint`,
  });
  const submit = h("button", { type: "submit", class: "btn btn-primary", id: `${idPrefix}-submit` }, "Top up");
  const result = h("div", { class: "form-result", id: `${idPrefix}-result`, "aria-live": "polite" });
  let pending = null; // {amount, key} of a submission not yet answered
  const form = h(
    "form",
    { class: "topup-form", novalidate: true },
    h(
      "div",
      { class: "field" },
      h("label", { for: amountId }, `Amount (${account.currency || "currency"})`),
      h("div", { class: "input-group" }, h("span", { class: "input-prefix", "aria-hidden": "true" }, money(0, account.currency).replace(/[\d.,\s]/g, "") || account.currency || ""), amount),
      h("p", { class: "hint", id: `${idPrefix}-hint` }, tariffHint(account)),
    ),
    amountChoices(account, amount, idPrefix),
    h("div", { class: "button-row" }, submit),
    result,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = amount.value.trim().replace(",", ".");
    if (!AMOUNT.test(value) || Number(value) <= 0) {
      fill(result, h("div", { class: "alert alert-error", role: "alert" }, "Enter an amount such as 10 or 10.50."));
      amount.setAttribute("aria-invalid", "true");
      amount.focus();
      return;
    }
    amount.removeAttribute("aria-invalid");
    if (!pending || pending.amount !== value) pending = { amount: value, key: requestId("web") };
    submit.disabled = true;
    submit.textContent = "Topping up\u2026";
    fill(result);
    try {
      const answer = await post(`prepaid/accounts/${enc(account.id)}/top-ups`, { amount: value, request_id: pending.key });
      pending = null;
      amount.value = "";
      const credit = answer?.account?.last_top_up?.credit_units;
      fill(
        result,
        h(
          "div",
          { class: "alert alert-ok", role: "status" },
          h("strong", {}, "Top-up accepted. "),
          `${money(value, account.currency)}${credit ? ` bought ${decimal(credit)} ${unitLabel(account)}` : ""}; the balance is now ${decimal(answer?.account?.balance_units)} ${unitLabel(answer?.account || account)}.`,
        ),
      );
      toast(`Topped up ${money(value, account.currency)}`, "ok");
      onDone(answer);
    } catch (error) {
      if (error?.name !== "NetworkError") pending = null;
      fill(result, problemBox(error, { heading: "The top-up was not accepted" }));
    } finally {
      submit.disabled = false;
      submit.textContent = "Top up";
    }
  });
  return form;
}

function topUpsTable(account) {
  const list = Array.isArray(account.top_ups) ? [...account.top_ups].reverse() : account.last_top_up ? [account.last_top_up] : [];
  if (!list.length) return h("p", { class: "muted" }, "No top-ups yet.");
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "table table-compact", id: "topups-table" },
      h("thead", {}, h("tr", {}, ["Time", "Amount", "Credit", "Reference"].map((l) => h("th", { scope: "col" }, l)))),
      h(
        "tbody",
        {},
        list.slice(0, 20).map((t) =>
          h(
            "tr",
            {},
            h("td", {}, h("time", { datetime: t.at }, dateTime(t.at))),
            h("td", { class: "num" }, money(t.amount, account.currency)),
            h("td", { class: "num" }, t.credit_units ? `${decimal(t.credit_units)} ${unitLabel(account)}` : DASH),
            h("td", { class: "mono" }, text(t.key)),
          ),
        ),
      ),
    ),
  );
}

async function renderList({ main, scope }) {
  const body = h("div");
  main.append(pageHead("Prepaid", { subtitle: "Prepaid accounts, their balances and the supply state." }), body);
  scope.every(REFRESH_MS, async () => {
    try {
      const accounts = await get("prepaid/accounts", undefined, { signal: scope.signal });
      fill(
        body,
        card(
          "Accounts",
          { id: "accounts" },
          accounts.length
            ? h(
                "div",
                { class: "table-wrap" },
                h(
                  "table",
                  { class: "table", id: "accounts-table" },
                  h("thead", {}, h("tr", {}, ["Account", "Meter", "Balance", "Total topped up", "Supply", "Last top-up"].map((l) => h("th", { scope: "col" }, l)))),
                  h(
                    "tbody",
                    {},
                    accounts.map((a) =>
                      h(
                        "tr",
                        { dataset: { account: a.id } },
                        h("th", { scope: "row" }, h("a", { href: `#/prepaid/${enc(a.id)}` }, a.id)),
                        h("td", {}, h("a", { href: `#/meter/${enc(a.meter_id)}` }, a.meter_id)),
                        h("td", { class: `num ${String(a.balance_units).startsWith("-") ? "negative" : ""}` }, `${decimal(a.balance_units)} ${unitLabel(a)}`),
                        h("td", { class: "num" }, money(a.total_topped_up, a.currency)),
                        h("td", {}, relayBadge(a.relay)),
                        h("td", {}, timeEl(a.last_top_up?.at)),
                      ),
                    ),
                  ),
                ),
              )
            : h("p", { class: "muted" }, "No prepaid accounts are configured ([prepaid] in the fleet configuration)."),
        ),
      );
    } catch (error) {
      if (error?.name === "AbortError") return;
      fill(body, problemBox(error, { heading: "The accounts could not be loaded" }));
    }
  });
}

async function renderAccount({ main, scope, session }, id) {
  const head = h("div");
  const errors = h("div");
  main.append(head, errors);
  let account;
  try {
    account = await get(`prepaid/accounts/${enc(id)}`, undefined, { signal: scope.signal });
  } catch (error) {
    if (error?.name === "AbortError") return;
    fill(head, pageHead(`Prepaid ${id}`), problemBox(error, { heading: "This account could not be loaded" }), h("p", {}, h("a", { href: "#/prepaid" }, "All accounts")));
    return;
  }
  const summary = h("div", { id: "account-summary" });
  const history = h("div");
  let headKey = "";
  const draw = () => {
    const key = `${account.relay}|${account.meter_id}`;
    if (key !== headKey) {
      headKey = key;
      fill(
        head,
      h("nav", { class: "breadcrumb", "aria-label": "Breadcrumb" }, h("a", { href: "#/prepaid" }, "Prepaid"), h("span", { "aria-hidden": "true" }, " / "), h("span", { "aria-current": "page" }, account.id)),
      pageHead(`Account ${account.id}`, { badges: h("span", { id: "account-relay" }, relayBadge(account.relay)), subtitle: `Meter ${account.meter_id}` }),
      );
    }
    fill(
      summary,
      balanceView(account),
      facts([
        ["Meter number", h("a", { href: `#/meter/${enc(account.meter_id)}`, id: "account-meter" }, account.meter_id)],
        ["Total topped up", h("span", { id: "total-topped-up" }, money(account.total_topped_up, account.currency))],
        ["Credited", `${decimal(account.credited_units)} ${unitLabel(account)}`],
        ["Consumed", `${decimal(account.consumed_units)} ${unitLabel(account)}`],
        ["Energy counted", account.energy_wh !== undefined && account.energy_wh !== null ? `${decimal((Number(account.energy_wh) / 1000).toFixed(3))} kWh` : DASH],
        ["Last top-up", account.last_top_up ? [money(account.last_top_up.amount, account.currency), " \u00b7 ", timeEl(account.last_top_up.at)] : DASH],
        ["Last reading", timeEl(account.last_reading_at)],
        ["Supply", account.disconnected_by_prepaid ? "Off: disconnected for lack of credit" : relayBadge(account.relay)],
      ]),
    );
    fill(history, topUpsTable(account));
  };
  draw();
  const canTopUp = session.canOperate || session.isConsumer;
  main.append(
    h(
      "div",
      { class: "grid grid-prepaid" },
      card("Balance", { id: "account" }, summary),
      card(
        "Top up",
        { id: "topup" },
        canTopUp
          ? topUpForm(account, (answer) => {
              if (answer?.account) account = answer.account;
              draw();
            })
          : h("p", { class: "muted" }, `Your role (${session.user.role}) may not top up.`),
      ),
      card("Top-ups", { id: "topups", className: "span-2" }, history),
    ),
  );
  scope.every(
    REFRESH_MS,
    async () => {
      try {
        account = await get(`prepaid/accounts/${enc(account.id)}`, undefined, { signal: scope.signal });
        fill(errors);
        draw();
      } catch (error) {
        if (error?.name === "AbortError") return;
        fill(errors, problemBox(error, { heading: "The account could not be refreshed" }));
      }
    },
    { now: false },
  );
}

export async function render(context) {
  const id = context.params[0];
  if (id) await renderAccount(context, id);
  else await renderList(context);
}
