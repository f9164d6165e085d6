// Ovation's embeddable widget: <script src="https://HOST/widget.js" data-site="SITE" async>
// plus <ovation-widget path="/post/" theme="auto" lang="en"></ovation-widget> where it goes.
// Plain JavaScript, no framework, no build step. Everything lives in a shadow root, the only
// global name is the custom element, and nothing is sent to anyone but the Ovation host.
// Server strings are inserted as text, except a comment's `html`, which the server sanitised.
(() => {
"use strict";
const script = document.currentScript;
if (!window.customElements || customElements.get("ovation-widget")) return;
// /widget.js as served carries widget.css here (web/routes/pages.py inlines it).
const CSS = "__OVATION_CSS__";
const data = name => (script && script.getAttribute("data-" + name)) || "";
const API = (data("api") || (script && script.src ? new URL(script.src, location.href).origin
  : location.origin)).replace(/\/+$/, "");
const POLL_MS = 5000;
const viewed = new Set();  // one view per page per load, even if the element is re-created

const L = {
  en: {
    views: ["view", "views"], you: "you: {n}/{cap}", rate: "{n} of {max} stars", ratings: ["{n} rating", "{n} ratings"], capped: "That is all the applause you can give. Thank you!",
    comments: ["{n} comment", "{n} comments"], none: "No comments yet. Start the conversation!",
    sort: "Sort", oldest: "Oldest", newest: "Newest", top: "Top", your: "Your comment",
    hint: "Markdown works: **bold**, _italic_, [link](https://…), `code`.",
    name: "Name (optional)", email: "E-mail (optional, never shown)", notify: "E-mail me replies",
    post: "Post comment", posting: "Sending…", reply: "Reply", replyTo: "Your reply to {name}",
    cancel: "Cancel", edit: "Edit", save: "Save", del: "Delete", really: "Really delete?",
    deleted: "This comment was deleted.", pending: "Awaiting moderation: only you can see it",
    mine: "yours", edited: "edited", anon: "Anonymous", more: "Load more comments",
    fresh: ["Show {n} new comment", "Show {n} new comments"], announce: ["{n} new comment", "{n} new comments"],
    up: "Helpful", down: "Not helpful", thanks: "Thank you! Your comment is posted.",
    held: "Thank you! Your comment appears once a moderator approves it.", saved: "Saved.",
    gone: "Deleted.", live: "Live", retry: "Reconnecting…", poll: "Updating every few seconds",
    newPost: "New post:", region: "Reactions and comments", reactions: "Reactions",
    loading: "Loading comments…", empty: "Please write something first.",
    e_rate: "You are commenting too fast. Please try again in {n} s.",
    e_dup: "You posted this comment already.", e_ban: "Commenting is not possible from here.",
    e_window: "The time to change this comment is over.",
    e_token: "This comment cannot be changed from this browser.",
    e_parent: "The comment you replied to is gone.",
    e_busy: "The server is busy. Please try again in a moment.",
    e_net: "Could not reach the server. Check your connection and try again.",
    e_body: "Your comment is empty or too long.", e_email: "That e-mail address does not look right.",
    e_origin: "Comments are not enabled for this address.", e_other: "Something went wrong ({m})."
  },
  de: {
    views: ["Aufruf", "Aufrufe"], you: "du: {n}/{cap}", rate: "{n} von {max} Sternen", ratings: ["{n} Bewertung", "{n} Bewertungen"], capped: "Mehr Applaus geht nicht. Danke!",
    comments: ["{n} Kommentar", "{n} Kommentare"], none: "Noch keine Kommentare. Schreib den ersten!",
    sort: "Sortierung", oldest: "Älteste", newest: "Neueste", top: "Beste", your: "Dein Kommentar",
    hint: "Markdown geht: **fett**, _kursiv_, [Link](https://…), `Code`.",
    name: "Name (optional)", email: "E-Mail (optional, wird nie gezeigt)", notify: "Antworten per E-Mail",
    post: "Kommentar senden", posting: "Wird gesendet…", reply: "Antworten", replyTo: "Deine Antwort an {name}",
    cancel: "Abbrechen", edit: "Bearbeiten", save: "Speichern", del: "Löschen", really: "Wirklich löschen?",
    deleted: "Dieser Kommentar wurde gelöscht.", pending: "Wartet auf Freigabe: nur du siehst ihn",
    mine: "deiner", edited: "bearbeitet", anon: "Anonym", more: "Weitere Kommentare laden",
    fresh: ["{n} neuen Kommentar zeigen", "{n} neue Kommentare zeigen"], announce: ["{n} neuer Kommentar", "{n} neue Kommentare"],
    up: "Hilfreich", down: "Nicht hilfreich", thanks: "Danke! Dein Kommentar ist veröffentlicht.",
    held: "Danke! Dein Kommentar erscheint, sobald er freigegeben ist.", saved: "Gespeichert.",
    gone: "Gelöscht.", live: "Live", retry: "Verbinde neu…", poll: "Aktualisiert alle paar Sekunden",
    newPost: "Neuer Beitrag:", region: "Reaktionen und Kommentare", reactions: "Reaktionen",
    loading: "Kommentare werden geladen…", empty: "Bitte schreib zuerst etwas.",
    rx_like: "Gefällt mir", rx_applause: "Applaus",
    e_rate: "Du kommentierst zu schnell. Bitte versuch es in {n} s wieder.",
    e_dup: "Diesen Kommentar hast du schon gesendet.", e_ban: "Von hier aus kann nicht kommentiert werden.",
    e_window: "Die Zeit zum Ändern dieses Kommentars ist abgelaufen.",
    e_token: "Dieser Kommentar kann in diesem Browser nicht geändert werden.",
    e_parent: "Der Kommentar, auf den du antwortest, ist weg.",
    e_busy: "Der Server ist ausgelastet. Bitte versuch es gleich noch einmal.",
    e_net: "Der Server ist nicht erreichbar. Prüfe deine Verbindung.",
    e_body: "Dein Kommentar ist leer oder zu lang.", e_email: "Diese E-Mail-Adresse sieht nicht richtig aus.",
    e_origin: "Kommentare sind für diese Adresse nicht freigeschaltet.", e_other: "Etwas ist schiefgegangen ({m})."
  },
  fr: {
    views: ["vue", "vues"], you: "vous : {n}/{cap}", rate: "{n} sur {max} étoiles", ratings: ["{n} note", "{n} notes"], capped: "Vous avez donné tous vos applaudissements. Merci !",
    comments: ["{n} commentaire", "{n} commentaires"], none: "Pas encore de commentaire. Lancez la discussion !",
    sort: "Trier", oldest: "Plus anciens", newest: "Plus récents", top: "Meilleurs", your: "Votre commentaire",
    hint: "Markdown accepté : **gras**, _italique_, [lien](https://…), `code`.",
    name: "Nom (facultatif)", email: "E-mail (facultatif, jamais affiché)", notify: "M'avertir des réponses",
    post: "Publier", posting: "Envoi…", reply: "Répondre", replyTo: "Votre réponse à {name}",
    cancel: "Annuler", edit: "Modifier", save: "Enregistrer", del: "Supprimer", really: "Vraiment supprimer ?",
    deleted: "Ce commentaire a été supprimé.", pending: "En attente de modération : visible par vous seul",
    mine: "le vôtre", edited: "modifié", anon: "Anonyme", more: "Plus de commentaires",
    fresh: ["Voir {n} nouveau commentaire", "Voir {n} nouveaux commentaires"], announce: ["{n} nouveau commentaire", "{n} nouveaux commentaires"],
    up: "Utile", down: "Pas utile", thanks: "Merci ! Votre commentaire est publié.",
    held: "Merci ! Votre commentaire apparaîtra après modération.", saved: "Enregistré.",
    gone: "Supprimé.", live: "En direct", retry: "Reconnexion…", poll: "Mise à jour toutes les quelques secondes",
    newPost: "Nouvel article :", region: "Réactions et commentaires", reactions: "Réactions",
    loading: "Chargement des commentaires…", empty: "Écrivez d'abord quelque chose.",
    rx_like: "J'aime", rx_applause: "Applaudissements", rx_view: "Vues",
    e_rate: "Vous commentez trop vite. Réessayez dans {n} s.",
    e_dup: "Vous avez déjà publié ce commentaire.", e_ban: "Impossible de commenter depuis ici.",
    e_window: "Le délai pour modifier ce commentaire est passé.",
    e_token: "Ce commentaire ne peut pas être modifié depuis ce navigateur.",
    e_parent: "Le commentaire auquel vous répondez a disparu.",
    e_busy: "Le serveur est occupé. Réessayez dans un instant.",
    e_net: "Serveur injoignable. Vérifiez votre connexion.",
    e_body: "Votre commentaire est vide ou trop long.", e_email: "Cette adresse e-mail semble incorrecte.",
    e_origin: "Les commentaires ne sont pas activés pour cette adresse.", e_other: "Une erreur est survenue ({m})."
  }
};
// Server error codes -> messages; invalid_input is told apart by its details.field.
const ERRORS = {
  rate_limited: "e_rate", duplicate_comment: "e_dup", banned: "e_ban", edit_window_closed: "e_window",
  invalid_edit_token: "e_token", unknown_parent: "e_parent", service_unavailable: "e_busy",
  network: "e_net", origin_not_allowed: "e_origin", unknown_site: "e_origin"
};
const FIELD_ERRORS = { body: "e_body", author_email: "e_email" };

// localStorage, or memory where it is blocked: the visitor id and the edit tokens live here.
const store = (() => {
  try {
    localStorage.setItem("ovation.probe", "1");
    localStorage.removeItem("ovation.probe");
    return localStorage;
  } catch (e) {
    const memory = new Map();
    return { getItem: k => memory.has(k) ? memory.get(k) : null, setItem: (k, v) => memory.set(k, String(v)) };
  }
})();
const visitorId = () => {
  let id = store.getItem("ovation.visitor");
  if (!/^[\w-]{8,64}$/.test(id || "")) {
    id = "v-" + Array.from(crypto.getRandomValues(new Uint8Array(12)), b => b.toString(16).padStart(2, "0")).join("");
    store.setItem("ovation.visitor", id);
  }
  return id;
};
// Own comments: {id: {t: edit token, u: editable until (ms), b: the Markdown we sent}}.
const ownAll = () => {
  try { return JSON.parse(store.getItem("ovation.mine")) || {}; } catch (e) { return {}; }
};
const ownSave = all => {
  for (const id in all) if (all[id].u < Date.now()) delete all[id];
  store.setItem("ovation.mine", JSON.stringify(all));
};
const query = params => new URLSearchParams(Object.entries(params).filter(([, v]) => v != null)).toString();

// Build DOM: attributes are set, never parsed; children are nodes or plain text.
const h = (tag, props, ...kids) => {
  const el = document.createElement(tag);
  for (const k in props) {
    const v = props[k];
    if (v == null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  el.append(...kids.filter(kid => kid != null));
  return el;
};
let formSeq = 0;

class OvationWidget extends HTMLElement {
  static get observedAttributes() { return ["path", "lang", "site"]; }
  connectedCallback() {
    if (!this.shadowRoot) this.attachShadow({ mode: "open" });
    this.start();
  }
  disconnectedCallback() { this.stop(); }
  attributeChangedCallback() { if (this.on) { this.stop(); this.start(); } }

  start() {
    this.on = true;
    this.gen = (this.gen || 0) + 1;
    this.timers = new Set();
    this.site = this.getAttribute("site") || data("site");
    this.path = this.getAttribute("path") || location.pathname;
    const lang = ((this.closest("[lang]") || {}).lang || navigator.language || "en").toLowerCase().split("-")[0];
    this.language = L[lang] ? lang : "en";
    this.visitor = visitorId();
    Object.assign(this, { totals: {}, mine: {}, queued: {}, inflight: {}, rx: {}, types: [],
      byId: new Map(), seen: new Set(), fresh: [], sort: "oldest", total: 0, delay: 1000, fails: 0 });
    this.build();
    this.boot();
  }
  stop() {
    this.on = false;
    if (this.ws) { this.ws.onclose = null; this.ws.close(); this.ws = null; }
    this.timers.forEach(clearTimeout);
    this.polling = null;
  }
  later(fn, ms) {
    const id = setTimeout(() => { this.timers.delete(id); fn(); }, ms);
    this.timers.add(id);
    return id;
  }
  every(fn, ms) {
    const id = setInterval(fn, ms);
    this.timers.add(id);
    return id;
  }
  t(key, vars = {}, fallback = "") {
    let s = L[this.language][key] ?? L.en[key] ?? fallback;
    if (Array.isArray(s)) s = s[new Intl.PluralRules(this.language).select(vars.n) == "one" ? 0 : 1];
    return s.replace(/\{(\w+)\}/g, (_, k) => vars[k]);
  }
  num(n) { return Number(n || 0).toLocaleString(this.language); }
  date(iso) {
    try {
      return new Intl.DateTimeFormat(this.language, { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso));
    } catch (e) { return iso; }
  }
  err(e) {
    const d = e.details || {};
    if (e.code == "reaction_rejected") return e.message;  // a plugin's own words
    const key = e.code == "invalid_input" ? FIELD_ERRORS[d.field] : ERRORS[e.code];
    return key ? this.t(key, { n: d.retry_after_s }) : this.t("e_other", { m: e.message || e.code });
  }
  async req(method, route, body) {
    let response;
    try {
      response = await fetch(API + "/api/v1/sites/" + encodeURIComponent(this.site) + route, {
        method, credentials: "omit", body: body && JSON.stringify(body),
        headers: body ? { "Content-Type": "application/json" } : {} });
    } catch (e) {
      throw { code: "network" };
    }
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw Object.assign({ code: "http_" + response.status }, answer.error);
    return answer;
  }
  interact(reaction, action, amount, extra) {
    return this.req("POST", "/interactions", { path: this.path, reaction, action, amount, visitor: this.visitor, ...extra });
  }

  build() {
    const T = (k, v) => this.t(k, v);
    this.bar = h("div", { class: "bar", role: "group", "aria-label": T("reactions") });
    this.say = h("div", { class: "sr", role: "status", "aria-live": "polite" });
    this.notice = h("p", { class: "note", role: "status", hidden: true });
    this.heading = h("h2", { id: "ov-h" }, T("loading"));
    this.sorter = h("select", { onchange: () => { this.sort = this.sorter.value; this.loadThread(0); } },
      ...["oldest", "newest", "top"].map(s => h("option", { value: s }, T(s))));
    this.freshButton = h("button", { type: "button", class: "new", hidden: true, onclick: () => this.showFresh() });
    this.list = h("ol", { class: "thread" });
    this.empty = h("p", { class: "gone", hidden: true }, T("none"));
    this.more = h("button", { type: "button", class: "more", hidden: true, onclick: () => this.loadThread(this.next) }, T("more"));
    this.state = h("span", {}, h("span", { class: "dot", "aria-hidden": "true" }), h("span"));
    // A constructed style sheet needs no 'unsafe-inline' under the host page's CSP.
    let style = null;
    try {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      this.shadowRoot.adoptedStyleSheets = [sheet];
    } catch (e) {
      style = h("style", {}, CSS);
    }
    this.shadowRoot.replaceChildren(...(style ? [style] : []),
      h("section", { class: "ov", lang: this.language, "aria-label": T("region") }, this.notice, this.bar, this.say,
        h("section", { "aria-labelledby": "ov-h" },
          h("div", { class: "head" }, this.heading, h("label", { class: "chk" }, T("sort"), this.sorter)),
          this.form(null), this.freshButton, this.empty, this.list, this.more),
        h("p", { class: "foot" }, this.state)));
  }

  boot() {
    const gen = this.gen, key = this.site + " " + this.path;
    const totals = () => this.req("GET", "/totals?" + query({ path: this.path, visitor: this.visitor }));
    const first = viewed.has(key) ? totals()
      : this.interact("view", "add", 1).catch(e => e.code == "unknown_reaction" ? totals() : Promise.reject(e));
    viewed.add(key);
    Promise.all([this.req("GET", "/config"), first]).then(([config, state]) => {
      if (gen != this.gen) return;
      this.types = config.reactions;
      this.renderBar();
      this.apply(state);
    }, e => this.flash(e));
    this.loadThread(0);
    this.connect();
  }

  // -- reactions: rendered from the site's configuration, so plugin types need no change here
  renderBar() {
    this.bar.replaceChildren();
    for (const type of this.types) {
      const name = type.name, r = { type, n: h("span", { class: "n" }, "0"), you: h("span", { class: "you" }) };
      // The name a screen reader hears: "Like 3", "Applause 120 you: 3/12" (label, then what shows).
      const label = this.t("rx_" + name, {}, type.label), spoken = h("span", { class: "sr" }, label + " ");
      const icon = ic => /^\s*</.test(ic)
        ? h("img", { alt: "", src: "data:image/svg+xml;charset=utf-8," + encodeURIComponent(ic) })
        : h("span", { "aria-hidden": "true" }, ic);
      // Choices and scores: a group of buttons, one per option or per score.
      const group = opts => (r.opts = opts, h("span", { class: "rx grp", role: "group", "aria-label": label, "data-reaction": name }, ...opts));
      if (type.kind == "choice") {
        r.el = group(type.choices.map(c => h("button", { type: "button", class: "rx", title: c.label, "data-choice": c.key, onclick: () => this.choose(type, c.key) },
          icon(c.icon), h("span", { class: "sr" }, c.label + " "), h("span", { class: "n" }, "0"))));
      } else if (type.kind == "score") {
        const stars = [];
        for (let v = type.score_min; v <= type.score_max; v++) stars.push(h("button", { type: "button", class: "star", "data-score": v, "aria-label": this.t("rate", { n: v, max: type.score_max }), onclick: () => this.choose(type, v) }, type.icon));
        r.el = group(stars);
        r.el.append(r.n, r.you);
      } else if (name == "view") {
        r.el = h("span", { class: "rx" }, icon(type.icon), r.n, " ", r.you);
      } else if (type.kind == "toggle") {
        r.el = h("button", { type: "button", class: "rx", title: label, "data-reaction": name, onclick: () => this.toggle(type) }, icon(type.icon), spoken, r.n);
      } else {
        r.el = h("button", { type: "button", class: "rx", title: label, "data-reaction": name, oncontextmenu: e => e.preventDefault() }, icon(type.icon), spoken, r.n, " ", r.you);
        this.holdToClap(r);
      }
      this.rx[name] = r;
      this.bar.append(r.el);
    }
    this.paint();
  }
  holdToClap(r) {
    const el = r.el, stop = () => { clearTimeout(r.hold); clearInterval(r.tick); };
    el.addEventListener("pointerdown", e => {
      if (e.button) return;
      r.held = false;
      r.hold = this.later(() => {
        r.held = true;
        r.tick = this.every(() => { if (!this.clap(r.type)) stop(); }, 110);
      }, 350);
    });
    ["pointerup", "pointerleave", "pointercancel"].forEach(name => el.addEventListener(name, stop));
    el.addEventListener("click", () => {
      if (r.held) r.held = false;
      else this.clap(r.type);
    });
  }
  paint() {
    for (const name in this.rx) {
      const { type, el, n, you, opts } = this.rx[name], mine = this.mine[name];
      if (type.kind == "choice") {
        opts.forEach(b => {
          b.lastChild.textContent = this.num(this.totals[name + "." + b.dataset.choice]);
          b.setAttribute("aria-pressed", String(mine == b.dataset.choice));
        });
        continue;
      }
      if (type.kind == "score") {
        const count = this.totals[name + ".count"] || 0, avg = count && this.totals[name + ".sum"] / count;
        n.textContent = count ? avg.toLocaleString(this.language, { maximumFractionDigits: 1 }) : "–";
        you.textContent = this.t("ratings", { n: count });
        opts.forEach(b => {
          b.setAttribute("aria-pressed", String(mine == b.dataset.score));
          b.classList.toggle("on", b.dataset.score <= (mine || Math.round(avg)));
        });
        continue;
      }
      const extra = (this.queued[name] || 0) + (this.inflight[name] || 0);
      const total = (this.totals[name] || 0) + extra;
      n.textContent = this.num(total);
      if (name == "view") {
        you.textContent = this.t("views", { n: total });
      } else if (type.kind == "toggle") {
        el.setAttribute("aria-pressed", String(!!this.mine[name]));
      } else {
        const cap = type.per_visitor_cap, given = (this.mine[name] || 0) + extra;
        you.textContent = given && cap ? this.t("you", { n: given, cap }) : "";
        el.setAttribute("aria-disabled", String(!!cap && given >= cap));
      }
    }
  }
  apply(state) {
    if (!state) return;
    Object.assign(this.totals, state.totals);
    Object.assign(this.mine, state.visitor);
    if (state.comments != null) this.setCount(state.comments);
    this.paint();
  }
  async toggle(type) {
    const name = type.name, was = !!this.mine[name], step = was ? -1 : 1;
    this.mine[name] = !was;
    this.totals[name] = Math.max(0, (this.totals[name] || 0) + step);
    this.paint();
    try {
      this.apply(await this.interact(name, was ? "remove" : "add", 1));
    } catch (e) {
      this.mine[name] = was;
      this.totals[name] -= step;
      this.paint();
      this.flash(e);
    }
  }
  // A choice or a score: pick `v`, change to it, or take it back by picking it again.
  async choose(type, v) {
    const name = type.name, was = this.mine[name], off = was == v, undo = { ...this.totals };
    const shift = (x, d) => {
      if (x == null) return;
      const t = this.totals, k = type.kind == "choice" ? name + "." + x : name + ".sum";
      t[k] = (t[k] || 0) + (type.kind == "choice" ? d : d * x);
      if (type.kind == "score") t[name + ".count"] = (t[name + ".count"] || 0) + d;
    };
    shift(was, -1);
    if (!off) shift(v, 1);
    this.mine[name] = off ? null : v;
    this.paint();
    try {
      this.apply(await this.interact(name, off ? "remove" : "add", 1, off ? {} : { [type.kind]: v }));
    } catch (e) {
      this.totals = undo;
      this.mine[name] = was;
      this.paint();
      this.flash(e);
    }
  }
  // One clap, shown at once as "+N"; claps of a burst go to the server together.
  clap(type) {
    const name = type.name, cap = type.per_visitor_cap, r = this.rx[name];
    const given = (this.mine[name] || 0) + (this.queued[name] || 0) + (this.inflight[name] || 0);
    if (cap && given >= cap) {
      this.announce(this.t("capped"));
      return false;
    }
    this.queued[name] = (this.queued[name] || 0) + 1;
    r.burst = (r.burst || 0) + 1;
    if (r.bubble) r.bubble.remove();
    r.bubble = h("span", { class: "burst", "aria-hidden": "true" }, "+" + r.burst);
    r.el.append(r.bubble);
    clearTimeout(r.calm);
    r.calm = this.later(() => { r.burst = 0; r.bubble.remove(); }, 1500);
    clearTimeout(r.flush);
    if (this.queued[name] >= (type.max_amount || 1)) this.sendClaps(type);
    else r.flush = this.later(() => this.sendClaps(type), 400);
    this.paint();
    return true;
  }
  async sendClaps(type) {
    const name = type.name, amount = this.queued[name];
    if (!amount) return;
    this.queued[name] = 0;
    this.inflight[name] = (this.inflight[name] || 0) + amount;
    let answer = null;
    try {
      answer = await this.interact(name, "add", amount);
    } catch (e) {
      this.flash(e);
    }
    this.inflight[name] -= amount;
    this.apply(answer);
    this.paint();
  }

  // -- comments
  setCount(n) {
    this.total = n;
    this.heading.textContent = this.t("comments", { n });
    this.empty.hidden = n > 0 || this.byId.size > 0;
  }
  async loadThread(offset) {
    const gen = this.gen;
    this.more.disabled = true;
    try {
      const page = await this.req("GET", "/comments?" + query({ path: this.path, sort: this.sort, offset, visitor: this.visitor }));
      if (gen != this.gen) return;
      if (!offset) {
        this.list.replaceChildren();
        this.byId.clear();
      }
      page.comments.forEach(c => this.put(c, false));
      this.next = page.next_offset;
      this.more.hidden = page.next_offset == null;
      this.setCount(page.total);
    } catch (e) {
      this.flash(e);
    }
    this.more.disabled = false;
  }
  // Show comment `c`: update it where it is, or add it (in thread order, or where it belongs).
  put(c, place) {
    let rec = this.byId.get(c.id);
    this.fresh = this.fresh.filter(f => f.id != c.id);
    this.paintFresh();
    if (rec) {
      Object.assign(rec.c, c, { mine: rec.c.mine || c.mine });
      if (!rec.editing) this.fill(rec);
      return rec;
    }
    rec = { c, li: h("li", { class: "c", tabindex: "-1", "data-id": c.id }) };
    this.byId.set(c.id, rec);
    this.fill(rec);
    const parent = c.parent_id && this.byId.get(c.parent_id);
    if (place && parent) {
      // After the parent's last descendant: replies follow their parent, depth first.
      let after = parent.li;
      while (after.nextElementSibling && this.depthOf(after.nextElementSibling) > parent.c.depth) after = after.nextElementSibling;
      after.after(rec.li);
    } else if (place && this.sort == "newest" && !c.parent_id) {
      this.list.prepend(rec.li);
    } else {
      this.list.append(rec.li);
    }
    this.empty.hidden = true;
    return rec;
  }
  depthOf(li) { return this.byId.get(li.dataset.id).c.depth; }
  fill(rec) {
    const c = rec.c, T = (k, v) => this.t(k, v), gone = c.status == "deleted";
    const own = this.own(c.id), name = c.author_name || T("anon");
    rec.li.style.setProperty("--depth", Math.min(c.depth || 0, 6));
    const avatar = h("span", { class: "av", "aria-hidden": "true" }, gone ? "" : name.trim().charAt(0).toUpperCase());
    avatar.style.setProperty("--hue", parseInt((c.avatar_seed || "").slice(0, 4) || "d2", 16) % 360);
    const site = !gone && /^https?:\/\//i.test(c.author_website || "");
    const who = h(site ? "a" : "b", { class: "who", href: site ? c.author_website : null, rel: site ? "nofollow ugc noopener" : null }, gone ? "" : name);
    const body = h("div", { class: gone ? "body gone" : "body" });
    if (gone) body.textContent = T("deleted");
    else body.innerHTML = c.html;  // sanitised on the server (allowlist); the one HTML we insert
    const acts = h("div", { class: "acts" });
    if (c.status == "approved") {
      const voter = (dir, icon) => h("button", { type: "button", "data-vote": dir, onclick: () => this.vote(rec, dir) },
        h("span", { "aria-hidden": "true" }, icon + " "), h("span", { class: "sr" }, T(dir) + " "), h("span"));
      rec.up = voter("up", "▲");
      rec.down = voter("down", "▼");
      acts.append(rec.up, rec.down, h("button", { type: "button", onclick: () => this.replyForm(rec) }, T("reply")));
      this.paintVotes(rec);
    }
    if (own && !gone) {
      const remove = h("button", { type: "button", onclick: () => {
        if (remove.dataset.sure) return this.removeComment(rec, own);
        remove.dataset.sure = "1";
        remove.textContent = T("really");
        this.later(() => { delete remove.dataset.sure; remove.textContent = T("del"); }, 5000);
      } }, T("del"));
      acts.append(h("button", { type: "button", onclick: () => this.editForm(rec, own) }, T("edit")), remove);
      const left = own.u - Date.now();
      clearTimeout(rec.closing);
      if (left < 2 ** 31) rec.closing = this.later(() => { if (!rec.editing) this.fill(rec); }, left + 50);
    }
    rec.slot = h("div", {}, rec.reply);
    const focused = rec.li.contains(this.shadowRoot.activeElement);
    rec.li.replaceChildren(h("article", {},
      h("header", {}, avatar, who, h("time", { datetime: c.created_at }, this.date(c.created_at)),
        c.edited_at && !gone ? h("span", { class: "tag" }, T("edited")) : null,
        (c.mine || own) && !gone ? h("span", { class: "tag" }, "· " + T("mine")) : null,
        c.status == "pending" ? h("span", { class: "tag pend" }, T("pending")) : null),
      body, acts, rec.slot));
    if (focused) rec.li.focus();
  }
  paintVotes(rec) {
    const c = rec.c;
    if (!rec.up) return;
    [[rec.up, "up", c.votes_up], [rec.down, "down", c.votes_down]].forEach(([b, dir, n]) => {
      b.lastChild.textContent = this.num(n);
      b.setAttribute("aria-pressed", String(c.my_vote == dir));
    });
  }
  async vote(rec, dir) {
    try {
      const v = await this.req("POST", "/comments/" + rec.c.id + "/vote",
        { visitor: this.visitor, vote: rec.c.my_vote == dir ? "none" : dir });
      Object.assign(rec.c, { votes_up: v.up, votes_down: v.down, my_vote: v.mine == "none" ? null : v.mine });
      this.paintVotes(rec);
    } catch (e) {
      this.flash(e);
    }
  }
  own(id) {
    const o = ownAll()[id];
    return o && o.u > Date.now() ? o : null;
  }

  // The comment form: new comments (parent null) and replies (parent: a comment's record).
  form(parent) {
    const T = (k, v) => this.t(k, v), id = "ov-f" + ++formSeq;
    const text = h("textarea", { id: id + "b", maxlength: "10000", "aria-describedby": id + "h" });
    const name = h("input", { autocomplete: "name", maxlength: "100" });
    const mail = h("input", { type: "email", autocomplete: "email", maxlength: "254" });
    const notify = h("input", { type: "checkbox", disabled: true });
    const trap = h("input", { name: "hp", tabindex: "-1", autocomplete: "off" });
    const msg = h("p", { class: "msg", "aria-live": "polite" });
    const send = h("button", { type: "submit", class: "go" }, T("post"));
    name.value = store.getItem("ovation.name") || "";
    mail.addEventListener("input", () => { notify.disabled = !mail.value.trim(); });
    text.addEventListener("keydown", e => {
      if (e.key == "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
      if (e.key == "Escape" && parent) this.closeReply(parent);
    });
    const form = h("form", { novalidate: true, onsubmit: async e => {
      e.preventDefault();
      const body = text.value.trim();
      const say = (s, bad) => { msg.textContent = s; msg.classList.toggle("bad", !!bad); };
      if (!body) { say(T("empty"), true); text.focus(); return; }
      const payload = { path: this.path, body, visitor: this.visitor, hp: trap.value };
      if (name.value.trim()) payload.author_name = name.value.trim();
      if (mail.value.trim()) Object.assign(payload, { author_email: mail.value.trim(), notify_replies: notify.checked });
      if (parent) payload.parent_id = parent.c.id;
      send.disabled = true;
      say(T("posting"));
      try {
        const r = await this.req("POST", "/comments", payload);
        store.setItem("ovation.name", payload.author_name || "");
        const all = ownAll();
        all[r.id] = { t: r.edit_token, u: Date.parse(r.editable_until), b: body };
        ownSave(all);
        text.value = "";
        say(T(r.status == "pending" ? "held" : "thanks"));
        if (r.html) {
          const rec = this.put({ id: r.id, parent_id: payload.parent_id || null, depth: parent ? parent.c.depth + 1 : 0,
            author_name: payload.author_name || "", author_website: "", avatar_seed: "", html: r.html, status: r.status,
            votes_up: 0, votes_down: 0, created_at: r.created_at, edited_at: null, mine: true }, true);
          if (r.status == "approved") this.setCount(this.total + 1);
          if (parent) { this.closeReply(parent); this.announce(msg.textContent); rec.li.focus(); }
        }
      } catch (err) {
        say(this.err(err), true);
      }
      send.disabled = false;
    } },
    h("label", { for: text.id }, parent ? T("replyTo", { name: parent.c.author_name || T("anon") }) : T("your")),
    text, h("p", { class: "you", id: id + "h" }, T("hint")),
    h("div", { class: "row" }, h("label", {}, T("name"), name), h("label", {}, T("email"), mail),
      h("label", { class: "chk" }, notify, T("notify"))),
    h("div", { class: "hp", "aria-hidden": "true" }, h("label", {}, "Leave this empty", trap)),
    h("div", { class: "row" }, send, parent ? h("button", { type: "button", onclick: () => this.closeReply(parent) }, T("cancel")) : null),
    msg);
    form.text = text;
    return form;
  }
  replyForm(rec) {
    if (rec.reply) return this.closeReply(rec);
    this.byId.forEach(other => other.reply && this.closeReply(other, true));
    rec.reply = this.form(rec);
    rec.slot.append(rec.reply);
    rec.reply.text.focus();
  }
  closeReply(rec, quiet) {
    if (!rec.reply) return;
    rec.reply.remove();
    rec.reply = null;
    if (!quiet) rec.li.focus();
  }
  editForm(rec, own) {
    const T = k => this.t(k), text = h("textarea", { "aria-label": T("edit"), maxlength: "10000" });
    const msg = h("p", { class: "msg bad", "aria-live": "polite" });
    const done = () => { rec.editing = false; this.fill(rec); rec.li.focus(); };
    text.value = own.b || "";
    rec.editing = true;
    const form = h("form", { novalidate: true, onsubmit: async e => {
      e.preventDefault();
      if (!text.value.trim()) { msg.textContent = T("empty"); return; }
      try {
        const r = await this.req("PATCH", "/comments/" + rec.c.id, { edit_token: own.t, body: text.value.trim() });
        const all = ownAll();
        if (all[rec.c.id]) all[rec.c.id].b = text.value.trim();
        ownSave(all);
        Object.assign(rec.c, { html: r.html, edited_at: rec.c.edited_at || new Date().toISOString() });
        done();
        this.announce(T("saved"));
      } catch (err) {
        msg.textContent = this.err(err);
      }
    } }, text, h("div", { class: "row" }, h("button", { type: "submit", class: "go" }, T("save")),
      h("button", { type: "button", onclick: done }, T("cancel"))), msg);
    text.addEventListener("keydown", e => { if (e.key == "Escape") done(); });
    rec.li.querySelector(".body").replaceWith(form);
    rec.li.querySelector(".acts").hidden = true;
    text.focus();
  }
  async removeComment(rec, own) {
    try {
      await this.req("DELETE", "/comments/" + rec.c.id, { edit_token: own.t });
      if (rec.c.status == "approved") this.setCount(Math.max(0, this.total - 1));
      Object.assign(rec.c, { status: "deleted", html: "", author_name: "", author_website: "" });
      const all = ownAll();
      delete all[rec.c.id];
      ownSave(all);
      this.fill(rec);
      rec.li.focus();
      this.announce(this.t("gone"));
    } catch (e) {
      this.flash(e);
    }
  }
  // A comment from someone else: waits behind the "N new comments" button, never jumps the page.
  incoming(c) {
    if (this.byId.has(c.id)) return this.put(c, true);
    const i = this.fresh.findIndex(f => f.id == c.id);
    if (i >= 0) this.fresh[i] = c;
    else this.fresh.push(c);
    this.paintFresh();
    this.announce(this.t("announce", { n: this.fresh.length }));
  }
  paintFresh() {
    this.freshButton.hidden = !this.fresh.length;
    this.freshButton.textContent = this.t("fresh", { n: this.fresh.length });
  }
  showFresh() {
    const shown = this.fresh.map(c => this.put(c, true));
    shown.forEach(rec => rec.li.classList.add("new-flash"));
    if (shown[0]) shown[0].li.focus();
  }
  edited(id, change) {
    const f = this.fresh.find(c => c.id == id), rec = this.byId.get(id);
    if (f) Object.assign(f, change);
    if (rec) {
      Object.assign(rec.c, change);
      if (!rec.editing) this.fill(rec);
    }
  }
  votes(id, up, down) {
    const rec = this.byId.get(id);
    if (rec) {
      Object.assign(rec.c, { votes_up: up, votes_down: down });
      this.paintVotes(rec);
    }
  }
  dropped(id) {
    const rec = this.byId.get(id);
    this.fresh = this.fresh.filter(c => c.id != id);
    this.paintFresh();
    if (rec) {
      rec.li.remove();
      this.byId.delete(id);
    }
  }

  // -- live: a WebSocket with backoff, and polling while it cannot connect
  frame(f) {
    const count = () => f.count != null && this.setCount(f.count);
    if (f.type == "subscribed") this.apply(f.pages[0]);
    else if (f.type == "totals") this.apply(f);
    else if (f.type == "comment") { this.incoming(f.comment); count(); }
    else if (f.type == "comment_edited") { this.edited(f.id, { html: f.html, edited_at: f.edited_at }); count(); }
    else if (f.type == "comment_deleted") { this.edited(f.id, { status: "deleted", html: "", author_name: "", author_website: "" }); count(); }
    else if (f.type == "comment_removed") { this.dropped(f.id); count(); }
    else if (f.type == "comment_votes") this.votes(f.id, f.up, f.down);
    else if (f.type == "notification" && !this.seen.has(f.idempotency_key)) {
      // A reply to this visitor's comment (the notifier's browser channel): shown here, and
      // as a system notification if the reader allowed this site's notifications already.
      this.seen.add(f.idempotency_key);
      const url = /^https?:\/\//i.test(f.url || "") ? f.url : null;
      this.notice.replaceChildren(url ? h("a", { href: url }, f.message) : f.message);
      this.notice.hidden = false;
      try {
        if (Notification.permission == "granted") new Notification(f.message, { body: f.text || "" });
      } catch (e) { /* no Notification API here */ }
    }
    else if (f.type == "new_post" && /^\/(?!\/)/.test(f.path || "")) {
      this.notice.replaceChildren(this.t("newPost") + " ", h("a", { href: f.path }, f.title || f.path));
      this.notice.hidden = false;
    }
  }
  connect() {
    if (!this.on) return;
    let ws, opened = false;
    try {
      ws = new WebSocket(API.replace(/^http/, "ws") + "/api/v1/sites/" + encodeURIComponent(this.site) + "/live");
    } catch (e) {
      return this.startPolling();
    }
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: "subscribe", paths: [this.path], visitor: this.visitor }));
    ws.onmessage = e => {
      let f;
      try { f = JSON.parse(e.data); } catch (x) { return; }
      // Only a socket that answered our subscription counts as working (a proxy may accept
      // the handshake and then drop every connection).
      if (f.type == "subscribed" && !opened) {
        opened = true;
        this.fails = 0;
        this.delay = 1000;
        this.status("live");
        clearInterval(this.polling);
        this.polling = null;
        if (this.lost) this.catchUp();
        this.lost = false;
        ws.pinger = this.every(() => ws.readyState == 1 && ws.send('{"type":"ping"}'), 25000);
      }
      this.frame(f);
    };
    ws.onclose = () => {
      clearInterval(ws.pinger);
      if (!this.on) return;
      this.lost = true;
      if (!opened) this.fails++;
      if (!this.polling) this.status("retry");
      if (this.fails >= 2) this.startPolling();
      const wait = this.delay;
      this.delay = Math.min(wait * 2, 30000);
      this.later(() => this.connect(), wait * (0.75 + Math.random() / 2));
    };
  }
  startPolling() {
    if (this.polling || !this.on) return;
    this.polling = this.every(() => this.catchUp(), POLL_MS);
    this.catchUp();
  }
  // What a closed socket may have missed: totals, new comments, edits and deletions.
  async catchUp() {
    try {
      const [state, page] = await Promise.all([
        this.req("GET", "/totals?" + query({ path: this.path, visitor: this.visitor })),
        this.req("GET", "/comments?" + query({ path: this.path, sort: "newest", limit: 50, visitor: this.visitor }))]);
      this.apply(state);
      for (const c of page.comments) {
        const rec = this.byId.get(c.id);
        if (!rec) { if (c.status == "approved") this.incoming(c); }
        else if (rec.c.html != c.html || rec.c.status != c.status) this.edited(c.id, c);
        else this.votes(c.id, c.votes_up, c.votes_down);
      }
      this.setCount(page.total);
      if (this.polling && !(this.ws && this.ws.readyState == 1)) this.status("poll");
    } catch (e) { /* the next poll or reconnect tries again */ }
  }
  status(key) {
    this.state.classList.toggle("on", key == "live");
    this.state.lastChild.textContent = this.t(key);
    this.setAttribute("data-state", key);
  }
  announce(text) {
    this.say.textContent = "";
    this.later(() => { this.say.textContent = text; }, 50);
  }
  flash(e) {
    this.notice.textContent = this.err(e);
    this.notice.hidden = false;
    clearTimeout(this.flashing);
    this.flashing = this.later(() => { this.notice.hidden = true; }, 8000);
  }
}
customElements.define("ovation-widget", OvationWidget);
})();
