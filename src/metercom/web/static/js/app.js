// The dashboard shell: who is logged in, the navigation for their role and the hash router.
// Routes: #/login #/fleet #/meter/<id> #/prepaid #/prepaid/<id> #/alarms #/me

import { get, post, setCsrfToken, setUnauthorizedHandler } from "./api.js";
import { PageScope, fill, h, problemBox, toast } from "./ui.js";

const STAFF = new Set(["viewer", "operator", "administrator"]);

export const session = {
  user: null,
  /** operator and administrator may send commands, top up and acknowledge. */
  get canOperate() {
    return this.user?.role === "operator" || this.user?.role === "administrator";
  },
  get isConsumer() {
    return this.user?.role === "consumer";
  },
};

const ROUTES = [
  { pattern: /^\/login$/, page: "login", public: true },
  { pattern: /^\/fleet$/, page: "fleet", staff: true },
  { pattern: /^\/meter\/(.+)$/, page: "meter", staff: true },
  { pattern: /^\/prepaid$/, page: "prepaid", staff: true },
  { pattern: /^\/prepaid\/(.+)$/, page: "prepaid", staff: true },
  { pattern: /^\/alarms$/, page: "alarms", staff: true },
  { pattern: /^\/me$/, page: "consumer" },
];

const NAV = [
  { href: "#/fleet", label: "Fleet", match: /^\/(fleet|meter)/ },
  { href: "#/alarms", label: "Alarms", match: /^\/alarms/, badge: "alarm-count" },
  { href: "#/prepaid", label: "Prepaid", match: /^\/prepaid/ },
];

const main = () => document.getElementById("main");
let scope = null;
let renderSerial = 0;
let navigated = false; // the first page of a visit keeps the browser's own focus
let loginMessage = "";

export function homeFor(user) {
  return user?.role === "consumer" ? "#/me" : "#/fleet";
}

export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function currentPath() {
  const raw = location.hash.replace(/^#/, "") || "/";
  try {
    return decodeURIComponent(raw.split("?")[0]);
  } catch {
    return raw;
  }
}

function renderNav(path) {
  const topbar = document.getElementById("topbar");
  const user = session.user;
  topbar.hidden = !user;
  if (!user) return;
  const links = document.getElementById("nav-links");
  const items = STAFF.has(user.role) ? NAV : [{ href: "#/me", label: "My meter", match: /^\/me/ }];
  fill(
    links,
    items.map((item) =>
      h(
        "li",
        {},
        h(
          "a",
          { href: item.href, "aria-current": item.match.test(path) ? "page" : null },
          item.label,
          item.badge ? h("span", { class: "nav-badge", id: item.badge, hidden: true }) : null,
        ),
      ),
    ),
  );
  fill(
    document.getElementById("user-name"),
    h("span", { class: "user-id" }, user.username),
    h("span", { class: "user-role" }, user.role),
  );
  if (STAFF.has(user.role)) refreshAlarmCount();
}

/** The count of active alarms in the navigation (also called by pages that know it). */
export function showAlarmCount(count) {
  const badgeEl = document.getElementById("alarm-count");
  if (!badgeEl) return;
  badgeEl.hidden = !count;
  badgeEl.textContent = String(count);
  badgeEl.setAttribute("aria-label", `${count} active`);
}

async function refreshAlarmCount() {
  try {
    const alarms = await get("alarms", { active: true });
    showAlarmCount(Array.isArray(alarms) ? alarms.length : 0);
  } catch {
    // the count is a convenience; the alarms page shows the error
  }
}

async function loadPage(name) {
  return import(`./pages/${name}.js`);
}

export async function route() {
  const serial = ++renderSerial;
  const path = currentPath();
  const match = ROUTES.map((r) => ({ r, m: path.match(r.pattern) })).find((x) => x.m);
  if (!session.user && !(match && match.r.public)) {
    if (path !== "/login" && path !== "/") sessionStorage.setItem("metercom.next", `#${path}`);
    go("#/login");
    return;
  }
  if (!match) {
    go(homeFor(session.user));
    return;
  }
  if (session.user && match.r.public) {
    go(homeFor(session.user));
    return;
  }
  if (match.r.staff && !STAFF.has(session.user.role)) {
    go(homeFor(session.user));
    return;
  }
  scope?.end();
  scope = new PageScope();
  renderNav(path);
  const container = main();
  container.setAttribute("aria-busy", "true");
  try {
    const module = await loadPage(match.r.page);
    if (serial !== renderSerial) return;
    container.replaceChildren();
    container.className = `page page-${match.r.page}`;
    await module.render({ main: container, scope, params: match.m.slice(1), session, go, message: loginMessage });
    loginMessage = "";
    // After a navigation, start screen readers and keyboards at the new page's heading.
    if (navigated && match.r.page !== "login") {
      const heading = container.querySelector("h1");
      if (heading) {
        heading.setAttribute("tabindex", "-1");
        heading.focus({ preventScroll: true });
      }
    }
    navigated = true;
  } catch (error) {
    if (serial !== renderSerial) return;
    if (error?.name === "AbortError") return;
    console.error(error);
    fill(container, problemBox(error, { heading: "This page could not be shown" }));
  } finally {
    if (serial === renderSerial) container.removeAttribute("aria-busy");
  }
}

/** After a successful login. */
export function loggedIn(answer) {
  session.user = answer.user;
  setCsrfToken(answer.csrf_token);
  const next = sessionStorage.getItem("metercom.next");
  sessionStorage.removeItem("metercom.next");
  go(next && session.user.role !== "consumer" ? next : homeFor(session.user));
}

async function logout() {
  try {
    await post("auth/logout");
  } catch (error) {
    if (error?.status !== 401) toast(`Logout: ${error.message}`, "error");
  }
  session.user = null;
  setCsrfToken(null);
  scope?.end();
  go("#/login");
}

async function boot() {
  setUnauthorizedHandler(() => {
    if (!session.user) return;
    const here = currentPath();
    if (here !== "/login" && here !== "/me") sessionStorage.setItem("metercom.next", `#${here}`);
    session.user = null;
    setCsrfToken(null);
    loginMessage = "Your session has ended. Please log in again.";
    go("#/login");
  });
  document.getElementById("logout").addEventListener("click", logout);
  document.querySelector("[data-skip]").addEventListener("click", (event) => {
    event.preventDefault();
    main().focus();
  });
  try {
    const me = await get("auth/me");
    session.user = me.user;
    setCsrfToken(me.csrf_token);
  } catch (error) {
    if (error?.status !== 401) loginMessage = error.message;
    session.user = null;
  }
  window.addEventListener("hashchange", route);
  route();
}

boot();
