// Formatting of numbers, energies and times for display. Values from the API may be numbers,
// decimal strings (money, prepaid units) or null; null shows as an en dash.

export const DASH = "\u2013";

export function isNumeric(value) {
  return value !== null && value !== undefined && value !== "" && Number.isFinite(Number(value));
}

/** A number with a fixed count of decimals and a unit, or a dash. */
export function num(value, digits = 1, unit = "") {
  if (!isNumeric(value)) return DASH;
  const text = Number(value).toLocaleString("en-GB", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
  return unit ? `${text}\u00a0${unit}` : text;
}

/** A decimal string as it came (exact), grouped for reading, e.g. "1,150.50". */
export function decimal(value, unit = "") {
  if (!isNumeric(value)) return DASH;
  const text = String(value);
  const negative = text.startsWith("-");
  const [whole, fraction] = text.replace(/^[-+]/, "").split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const out = `${negative ? "\u2212" : ""}${grouped}${fraction !== undefined ? `.${fraction}` : ""}`;
  return unit ? `${out}\u00a0${unit}` : out;
}

const CURRENCY_SYMBOLS = { INR: "\u20b9", EUR: "\u20ac", USD: "$", GBP: "\u00a3", ZAR: "R", KES: "KSh" };

/** Money as an exact decimal string with the currency's symbol or code. */
export function money(value, currency) {
  if (!isNumeric(value)) return DASH;
  const symbol = CURRENCY_SYMBOLS[currency];
  const amount = decimal(Number(value).toFixed(2));
  if (symbol) return amount.startsWith("\u2212") ? `\u2212${symbol}${amount.slice(1)}` : `${symbol}${amount}`;
  return currency ? `${amount}\u00a0${currency}` : amount;
}

export function parseTime(value) {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

const pad = (n) => String(n).padStart(2, "0");

/** "2026-03-02 10:00:05" in the browser's time zone. */
export function dateTime(value) {
  const date = parseTime(value);
  if (!date) return DASH;
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${clock(date)}`;
}

export function clock(date, seconds = true) {
  const hm = `${pad(date.getHours())}:${pad(date.getMinutes())}`;
  return seconds ? `${hm}:${pad(date.getSeconds())}` : hm;
}

/** "12 s ago", "in 3 min", "yesterday 14:02" ... relative to now. */
export function relative(value, now = new Date()) {
  const date = parseTime(value);
  if (!date) return DASH;
  const delta = Math.round((date.getTime() - now.getTime()) / 1000);
  const abs = Math.abs(delta);
  let text;
  if (abs < 5) return "now";
  if (abs < 90) text = `${abs} s`;
  else if (abs < 90 * 60) text = `${Math.round(abs / 60)} min`;
  else if (abs < 36 * 3600) text = `${Math.round(abs / 3600)} h`;
  else return dateTime(value);
  return delta < 0 ? `${text} ago` : `in ${text}`;
}

/** A `<time>` element's parts: relative text, ISO datetime and the absolute time as title. */
export function timeParts(value) {
  return { text: relative(value), datetime: value || "", title: dateTime(value) };
}

export function percent(share, digits = 0) {
  if (!isNumeric(share)) return DASH;
  return `${(Number(share) * 100).toFixed(digits)}\u00a0%`;
}

export function titleCase(text) {
  if (!text) return DASH;
  const spaced = String(text).replaceAll("_", " ");
  return spaced.charAt(0).toUpperCase() + spaced.slice(1);
}
