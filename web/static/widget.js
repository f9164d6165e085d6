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
const data = name => script?.dataset[name] || "";
const API = (data("api") || (script?.src ? new URL(script.src).origin : location.origin)).replace(/\/+$/, "");
const POLL_MS = 5000;
const viewed = new Set();  // one view per page per load, even if the element is re-created

// The widget's words, a line a key: the key, then English, German and French, " ~ " between
// them, and "|" between singular and plural. An empty cell falls back to English (rx_*: to the
// plugin's own label). Adding a language is adding a column and its code to L.
const TEXT = `views ~ view|views ~ Aufruf|Aufrufe ~ vue|vues
you ~ you: {n}/{cap} ~ du: {n}/{cap} ~ vous : {n}/{cap}
rate ~ {n} of {max} stars ~ {n} von {max} Sternen ~ {n} sur {max} étoiles
ratings ~ {n} rating|{n} ratings ~ {n} Bewertung|{n} Bewertungen ~ {n} note|{n} notes
capped ~ That is all the applause you can give. Thank you! ~ Mehr Applaus geht nicht. Danke! ~ Vous avez donné tous vos applaudissements. Merci !
comments ~ {n} comment|{n} comments ~ {n} Kommentar|{n} Kommentare ~ {n} commentaire|{n} commentaires
none ~ No comments yet. Start the conversation! ~ Noch keine Kommentare. Schreib den ersten! ~ Pas encore de commentaire. Lancez la discussion !
sort ~ Sort ~ Sortierung ~ Trier
oldest ~ Oldest ~ Älteste ~ Plus anciens
newest ~ Newest ~ Neueste ~ Plus récents
top ~ Top ~ Beste ~ Meilleurs
your ~ Your comment ~ Dein Kommentar ~ Votre commentaire
hint ~ Markdown: **bold**, _italic_, [link](https://…), \`code\`. ~ Markdown: **fett**, _kursiv_, [Link](https://…), \`Code\`. ~ Markdown : **gras**, _italique_, [lien](https://…), \`code\`.
name ~ Name (optional) ~ Name (optional) ~ Nom (facultatif)
email ~ E-mail (optional, never shown) ~ E-Mail (optional, wird nie gezeigt) ~ E-mail (facultatif, jamais affiché)
notify ~ E-mail me replies ~ Antworten per E-Mail ~ M'avertir des réponses
post ~ Post comment ~ Kommentar senden ~ Publier
posting ~ Sending… ~ Wird gesendet… ~ Envoi…
reply ~ Reply ~ Antworten ~ Répondre
replyTo ~ Your reply to {name} ~ Deine Antwort an {name} ~ Votre réponse à {name}
cancel ~ Cancel ~ Abbrechen ~ Annuler
edit ~ Edit ~ Bearbeiten ~ Modifier
save ~ Save ~ Speichern ~ Enregistrer
del ~ Delete ~ Löschen ~ Supprimer
really ~ Really delete? ~ Wirklich löschen? ~ Vraiment supprimer ?
deleted ~ This comment was deleted. ~ Dieser Kommentar wurde gelöscht. ~ Ce commentaire a été supprimé.
pending ~ Awaiting moderation: only you can see it ~ Wartet auf Freigabe: nur du siehst ihn ~ En attente de modération : visible par vous seul
mine ~ yours ~ deiner ~ le vôtre
edited ~ edited ~ bearbeitet ~ modifié
anon ~ Anonymous ~ Anonym ~ Anonyme
more ~ Load more comments ~ Weitere Kommentare laden ~ Plus de commentaires
fresh ~ Show {n} new comment|Show {n} new comments ~ {n} neuen Kommentar zeigen|{n} neue Kommentare zeigen ~ Voir {n} nouveau commentaire|Voir {n} nouveaux commentaires
announce ~ {n} new comment|{n} new comments ~ {n} neuer Kommentar|{n} neue Kommentare ~ {n} nouveau commentaire|{n} nouveaux commentaires
up ~ Helpful ~ Hilfreich ~ Utile
down ~ Not helpful ~ Nicht hilfreich ~ Pas utile
thanks ~ Thank you! Your comment is posted. ~ Danke! Dein Kommentar ist veröffentlicht. ~ Merci ! Votre commentaire est publié.
held ~ Thank you! Your comment appears once a moderator approves it. ~ Danke! Dein Kommentar erscheint, sobald er freigegeben ist. ~ Merci ! Votre commentaire apparaîtra après modération.
saved ~ Saved. ~ Gespeichert. ~ Enregistré.
live ~ Live ~ Live ~ En direct
retry ~ Reconnecting… ~ Verbinde neu… ~ Reconnexion…
poll ~ Updating every few seconds ~ Aktualisiert alle paar Sekunden ~ Mise à jour toutes les quelques secondes
newPost ~ New post: ~ Neuer Beitrag: ~ Nouvel article :
region ~ Reactions and comments ~ Reaktionen und Kommentare ~ Réactions et commentaires
reactions ~ Reactions ~ Reaktionen ~ Réactions
loading ~ Loading comments… ~ Kommentare werden geladen… ~ Chargement des commentaires…
e_rate_limited ~ You are commenting too fast. Please try again in {n} s. ~ Du kommentierst zu schnell. Bitte versuch es in {n} s wieder. ~ Vous commentez trop vite. Réessayez dans {n} s.
e_duplicate_comment ~ You posted this comment already. ~ Diesen Kommentar hast du schon gesendet. ~ Vous avez déjà publié ce commentaire.
e_edit_window_closed ~ The time to change this comment is over. ~ Die Zeit zum Ändern dieses Kommentars ist abgelaufen. ~ Le délai pour modifier ce commentaire est passé.
e_invalid_edit_token ~ This comment cannot be changed from this browser. ~ Dieser Kommentar kann in diesem Browser nicht geändert werden. ~ Ce commentaire ne peut pas être modifié depuis ce navigateur.
e_comment_deleted ~ This comment was deleted. ~ Dieser Kommentar wurde gelöscht. ~ Ce commentaire a été supprimé.
e_unknown_parent ~ The comment you replied to is gone. ~ Der Kommentar, auf den du antwortest, ist weg. ~ Le commentaire auquel vous répondez a disparu.
e_service_unavailable ~ The server is busy. Please try again in a moment. ~ Der Server ist ausgelastet. Bitte versuch es gleich noch einmal. ~ Le serveur est occupé. Réessayez dans un instant.
e_network ~ Could not reach the server. Check your connection. ~ Der Server ist nicht erreichbar. Prüfe deine Verbindung. ~ Serveur injoignable. Vérifiez votre connexion.
e_body ~ Your comment is empty or too long. ~ Dein Kommentar ist leer oder zu lang. ~ Votre commentaire est vide ou trop long.
e_email ~ That e-mail address does not look right. ~ Diese E-Mail-Adresse sieht nicht richtig aus. ~ Cette adresse e-mail semble incorrecte.
e_origin_not_allowed ~ Commenting is not possible from here. ~ Von hier aus kann nicht kommentiert werden. ~ Impossible de commenter depuis ici.
e_many ~ Too many requests. Please try again later. ~ Zu viele Anfragen. Bitte versuch es später wieder. ~ Trop de demandes. Réessayez plus tard.
e_other ~ Something went wrong ({m}). ~ Etwas ist schiefgegangen ({m}). ~ Une erreur est survenue ({m}).
subMail ~ E-mail address ~ E-Mail-Adresse ~ Adresse e-mail
follow ~ Subscribe to new posts ~ Neue Beiträge abonnieren ~ S'abonner aux nouveaux articles
rx_like ~  ~ Gefällt mir ~ J'aime
rx_applause ~  ~ Applaus ~ Applaudissements`;
const L = { en: {}, de: {}, fr: {} };
const learn = (words, key, cell) => { if (cell) words[key] = cell.split("|"); };
for (const line of TEXT.split("\n")) {
  const [key, ...cells] = line.split(" ~ ");
  Object.values(L).forEach((words, i) => learn(words, key, cells[i]));
}
// The server sends this table with its English column only (web/routes/pages.py) and each
// other column as /widget.LANG.json, beside widget.js: a page in English loads no word of
// another language, and one in German loads the German once (the browser caches it). Until
// it is here the widget waits (in English if it cannot come).
const asked = {};
const words = lang => asked[lang] ||= L[lang].views ? Promise.resolve()
  : fetch(new URL("widget." + lang + ".json", script?.src || API + "/"), { credentials: "omit" })
    .then(r => r.ok ? r.json() : {}).then(cells => { for (const key in cells) learn(L[lang], key, cells[key]); })
    .catch(() => {});

// localStorage, or memory where it is blocked: the visitor id and the edit tokens live here.
const store = (() => {
  try {
    localStorage.setItem("ovation.probe", "1");
    localStorage.removeItem("ovation.probe");
    return localStorage;
  } catch (e) {
    const memory = {};
    return { getItem: k => memory[k] ?? null, setItem: (k, v) => { memory[k] = "" + v; } };
  }
})();
const visitorId = () => {
  let id = store.getItem("ovation.visitor");
  if (!/^[\w-]{8,64}$/.test(id || "")) {
    id = "v-" + crypto.getRandomValues(new Uint32Array(3)).join("-");  // 96 random bits
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
const GONE = { status: "deleted", html: "", author_name: "", author_website: "" };  // a deleted comment

class OvationWidget extends HTMLElement {
  static observedAttributes = ["path", "lang", "site"];
  connectedCallback() {
    this.shadowRoot || this.attachShadow({ mode: "open" });
    this.start();
  }
  disconnectedCallback() { this.stop(); }
  attributeChangedCallback() { if (this.on) { this.stop(); this.start(); } }

  start() {
    this.on = true;
    const gen = this.gen = (this.gen || 0) + 1;
    this.timers = new Set();
    this.site = this.getAttribute("site") || data("site");
    this.path = this.getAttribute("path") || location.pathname;
    const lang = (this.closest("[lang]")?.lang || navigator.language || "en").toLowerCase().split("-")[0];
    this.language = L[lang] ? lang : "en";
    this.visitor = visitorId();
    Object.assign(this, { totals: {}, mine: {}, rx: {}, fmt: {},
      byId: new Map(), seen: new Set(), fresh: [], sort: "oldest", total: 0, delay: 1000, fails: 0 });
    // The first reads leave before anything is drawn: the server answers while the shadow
    // tree is built (and while the page's language, if not English, arrives).
    const reads = this.reads();
    words(this.language).then(() => {
      if (gen != this.gen || !this.on) return;
      this.build();
      this.boot(reads);
    });
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
  // Making an Intl object costs far more than using one: one of each kind per widget.
  intl(kind, options) { return this.fmt[kind] ||= new Intl[kind](this.language, options); }
  t(key, vars = {}, fallback = "") {
    const [one, other] = L[this.language][key] ?? L.en[key] ?? [fallback];
    const s = other && this.intl("PluralRules").select(vars.n) != "one" ? other : one;
    return s.replace(/\{(\w+)\}/g, (_, k) => vars[k]);
  }
  // A count (a whole number) under 1,000 is written the same in every language of L (Latin
  // digits, nothing to group), and the first Intl formatter in a page costs tens of ms: most
  // widgets need none before they are drawn. (A language with other digits must drop this.)
  num(n = 0) { return n < 1000 ? "" + (n || 0) : this.intl("NumberFormat").format(n); }
  date(iso) { return this.intl("DateTimeFormat", { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso)); }
  err(e) {
    const d = e.details || {}, c = e.code;
    if (c == "reaction_rejected") return e.message;  // a plugin's own words
    // A message for each server error code ("e_" + code); invalid_input's by its details.field.
    const key = "e_" + (c == "invalid_input" ? d.field?.replace("author_", "") : c == "unknown_site" || c == "banned" ? "origin_not_allowed" : c);
    return L.en[key] ? this.t(key, { n: d.retry_after_s }) : this.t("e_other", { m: e.message || c });
  }
  // `plain`: the body goes as text/plain, which makes the request a "simple" one that needs
  // no CORS preflight first; only the interactions route takes it (docs/api.md says why).
  async req(method, route, body, plain) {
    const response = await fetch(API + "/api/v1/sites/" + encodeURIComponent(this.site) + route, {
      method, credentials: "omit", body: body && JSON.stringify(body),
      headers: body && !plain ? { "Content-Type": "application/json" } : {} }).catch(() => { throw { code: "network" }; });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw Object.assign({ code: "http_" + response.status }, answer.error);
    return answer;
  }
  interact(reaction, action, amount, extra) {
    return this.req("POST", "/interactions", { path: this.path, reaction, action, amount, visitor: this.visitor, ...extra }, true);
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
    this.shadowRoot.replaceChildren(
      h("section", { class: "ov", lang: this.language, "aria-label": T("region") }, this.notice, this.bar, this.say,
        h("section", { "aria-labelledby": "ov-h" },
          h("div", { class: "head" }, this.heading, h("label", { class: "chk" }, T("sort"), this.sorter)),
          this.form(null), this.freshButton, this.empty, this.list, this.more),
        this.subscribe(), h("p", { class: "foot" }, this.state)));
    // A constructed style sheet needs no 'unsafe-inline' under the host page's CSP.
    try {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      this.shadowRoot.adoptedStyleSheets = [sheet];
    } catch (e) {
      this.shadowRoot.prepend(h("style", {}, CSS));
    }
  }

  // The site's configuration, the view (or the totals) and the thread's first page, asked
  // for at once. Each promise is marked handled now, so that a refusal arriving before the
  // widget is drawn is no "unhandled rejection"; boot() takes the answers.
  reads() {
    const key = this.site + " " + this.path, q = { path: this.path, visitor: this.visitor };
    const totals = () => this.req("GET", "/totals?" + new URLSearchParams(q));
    const all = [this.req("GET", "/config"), viewed.has(key) ? totals()
      : this.interact("view", "add", 1).catch(e => e.code == "unknown_reaction" ? totals() : Promise.reject(e)),
      this.page(0)];
    viewed.add(key);
    all.forEach(p => p.catch(() => {}));
    return all;
  }
  boot([config, view, thread]) {
    const gen = this.gen;
    Promise.all([config, view]).then(([config, state]) => {
      if (gen != this.gen) return;
      this.renderBar(config.reactions);
      this.sub.hidden = !config.email;  // no SMTP here: no confirmation could arrive
      this.toggleAttribute("data-nomail", !config.email);  // nor any reply by e-mail (CSS)
      this.apply(state);
    }, e => this.flash(e));
    this.loadThread(0, thread);
    this.connect();
  }

  // -- reactions: rendered from the site's configuration, so plugin types need no change here
  renderBar(types) {
    this.bar.replaceChildren();
    for (const type of types) {
      // queued: claps not sent yet; inflight: claps sent and not answered yet.
      const name = type.name, r = { type, n: h("span", { class: "n" }, "0"), you: h("span", { class: "you" }), queued: 0, inflight: 0 };
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
        r.el = h("button", { type: "button", class: "rx", title: label, "data-reaction": name, onclick: () => this.choose(type, true) }, icon(type.icon), spoken, r.n);
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
      const { type, el, n, you, opts, queued, inflight } = this.rx[name], mine = this.mine[name];
      if (type.kind == "choice") {
        opts.forEach(b => {
          b.lastChild.textContent = this.num(this.totals[name + "." + b.dataset.choice]);
          b.setAttribute("aria-pressed", mine == b.dataset.choice);
        });
        continue;
      }
      if (type.kind == "score") {
        const count = this.totals[name + ".count"] || 0, avg = count && this.totals[name + ".sum"] / count;
        n.textContent = count ? this.intl("NumberFormat").format(Math.round(avg * 10) / 10) : "–";
        you.textContent = this.t("ratings", { n: count });
        opts.forEach(b => {
          b.setAttribute("aria-pressed", mine == b.dataset.score);
          b.classList.toggle("on", b.dataset.score <= (mine || Math.round(avg)));
        });
        continue;
      }
      const extra = queued + inflight;
      const total = (this.totals[name] || 0) + extra;
      n.textContent = this.num(total);
      if (name == "view") {
        you.textContent = this.t("views", { n: total });
      } else if (type.kind == "toggle") {
        el.setAttribute("aria-pressed", !!this.mine[name]);
      } else {
        const cap = type.per_visitor_cap, given = (this.mine[name] || 0) + extra;
        you.textContent = given && cap ? this.t("you", { n: given, cap }) : "";
        el.setAttribute("aria-disabled", !!cap && given >= cap);
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
  // A toggle (v is true), a choice or a score: pick `v`, change to it, or take it back by
  // picking it again. Shown at once, undone if the server says no.
  async choose(type, v) {
    const name = type.name, kind = type.kind, t = this.totals, was = this.mine[name], off = was == v, undo = { ...t };
    const shift = (x, d) => {
      if (x == null || x === false) return;
      const k = kind == "choice" ? name + "." + x : kind == "score" ? name + ".sum" : name;
      t[k] = (t[k] || 0) + (kind == "score" ? d * x : d);
      if (kind == "score") t[name + ".count"] = (t[name + ".count"] || 0) + d;
    };
    shift(was, -1);
    if (!off) shift(v, 1);
    this.mine[name] = off ? null : v;
    this.paint();
    try {
      this.apply(await this.interact(name, off ? "remove" : "add", 1, off || kind == "toggle" ? {} : { [kind]: v }));
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
    const given = (this.mine[name] || 0) + r.queued + r.inflight;
    if (cap && given >= cap) {
      this.announce(this.t("capped"));
      return false;
    }
    r.queued++;
    r.burst = (r.burst || 0) + 1;
    if (r.bubble) r.bubble.remove();
    r.bubble = h("span", { class: "burst", "aria-hidden": "true" }, "+" + r.burst);
    r.el.append(r.bubble);
    clearTimeout(r.calm);
    r.calm = this.later(() => { r.burst = 0; r.bubble.remove(); }, 1500);
    clearTimeout(r.flush);
    if (r.queued >= (type.max_amount || 1)) this.sendClaps(type);
    else r.flush = this.later(() => this.sendClaps(type), 400);
    this.paint();
    return true;
  }
  async sendClaps(type) {
    const name = type.name, r = this.rx[name], amount = r.queued, sent = r.sent = (r.sent || 0) + 1;
    if (!amount) return;
    r.queued = 0;
    r.inflight += amount;
    let answer = null;
    try {
      answer = await this.interact(name, "add", amount);
    } catch (e) {
      this.flash(e);
    }
    r.inflight -= amount;
    // Bursts overlap on a slow network: an answer older than one shown would undo claps.
    if (answer && sent > (r.shown || 0)) {
      r.shown = sent;
      this.apply(answer);
    }
    this.paint();
  }

  // -- comments
  setCount(n) {
    this.total = n;
    this.heading.textContent = this.t("comments", { n });
    this.empty.hidden = n > 0 || this.byId.size > 0;
  }
  page(offset) {
    return this.req("GET", "/comments?" + new URLSearchParams({ path: this.path, sort: this.sort, offset, visitor: this.visitor }));
  }
  // `asked`: the page's read, if it left already (the first one, see reads()).
  async loadThread(offset, asked) {
    const gen = this.gen;
    this.more.disabled = true;
    try {
      const page = await (asked || this.page(offset));
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
    const waiting = this.fresh.length;
    this.fresh = this.fresh.filter(f => f.id != c.id);
    if (this.fresh.length < waiting) this.paintFresh();
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
      while (after.nextElementSibling && this.byId.get(after.nextElementSibling.dataset.id).c.depth > parent.c.depth) after = after.nextElementSibling;
      after.after(rec.li);
    } else if (place && this.sort == "newest" && !c.parent_id) {
      this.list.prepend(rec.li);
    } else {
      this.list.append(rec.li);
    }
    this.empty.hidden = true;
    return rec;
  }
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
      // "Really delete?" is the record's state, so a re-render meanwhile keeps asking.
      rec.del = h("button", { type: "button", onclick: () => {
        if (rec.sure) return this.removeComment(rec, own);
        rec.sure = rec.del.textContent = T("really");
        this.later(() => { rec.sure = null; rec.del.textContent = T("del"); }, 5000);
      } }, rec.sure || T("del"));
      acts.append(h("button", { type: "button", onclick: () => this.editForm(rec, own) }, T("edit")), rec.del);
      const left = own.u - Date.now();
      clearTimeout(rec.closing);
      if (left < 2 ** 31) rec.closing = this.later(() => { if (!rec.editing) this.fill(rec); }, left + 50);
    }
    // A re-render (a live update) must not take the reader's focus away: back to the same node
    // if it stays (an open reply form), else to the button in the same place, else the comment.
    const active = this.shadowRoot.activeElement, buttons = () => [...rec.li.querySelectorAll("button")];
    const focused = rec.li.contains(active), at = focused && buttons().indexOf(active);
    rec.slot = h("div", {}, rec.reply);
    rec.li.replaceChildren(h("article", {},
      h("header", {}, avatar, who, h("time", { datetime: c.created_at }, this.date(c.created_at)),
        c.edited_at && !gone ? h("span", { class: "tag" }, T("edited")) : null,
        (c.mine || own) && !gone ? h("span", { class: "tag" }, "· " + T("mine")) : null,
        c.status == "pending" ? h("span", { class: "tag pend" }, T("pending")) : null),
      body, acts, rec.slot));
    if (focused) (rec.li.contains(active) ? active : buttons()[at] || rec.li).focus();
  }
  paintVotes(rec) {
    const c = rec.c;
    if (!rec.up) return;
    [[rec.up, "up", c.votes_up], [rec.down, "down", c.votes_down]].forEach(([b, dir, n]) => {
      b.lastChild.textContent = this.num(n);
      b.setAttribute("aria-pressed", c.my_vote == dir);
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

  // A form that sends on submit: its submit button waits for the answer, and the live region
  // under it says what `work` answers, or the error (in red). `work` may throw {code} first.
  sender(work, ...kids) {
    const msg = h("p", { class: "msg", "aria-live": "polite" });
    const say = (s, bad) => { msg.textContent = s || ""; msg.classList.toggle("bad", !!bad); };
    const form = h("form", { novalidate: true, onsubmit: async e => {
      e.preventDefault();
      // A disabled button loses the focus (to the page's body): a keyboard user gets it back.
      const send = form.querySelector("[type=submit]"), had = this.shadowRoot.activeElement == send;
      send.disabled = true;
      say(this.t("posting"));
      try {
        say(await work());
      } catch (err) {
        say(this.err(err), true);
      }
      send.disabled = false;
      if (had && document.activeElement == document.body) send.focus();
    } }, ...kids, msg);
    return form;
  }
  // The comment form: new comments (parent null) and replies (parent: a comment's record).
  form(parent) {
    const T = (k, v) => this.t(k, v), id = "ov-f" + ++formSeq;
    const text = h("textarea", { id: id + "b", maxlength: "10000", "aria-describedby": id + "h" });
    const name = h("input", { autocomplete: "name", maxlength: "100" });
    const mail = h("input", { type: "email", autocomplete: "email", maxlength: "254" });
    const notify = h("input", { type: "checkbox", disabled: true });
    const trap = h("input", { name: "hp", tabindex: "-1", autocomplete: "off" });
    name.value = store.getItem("ovation.name") || "";
    mail.addEventListener("input", () => { notify.disabled = !mail.value.trim(); });
    text.addEventListener("keydown", e => {
      if (e.key == "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
      if (e.key == "Escape" && parent) this.closeReply(parent);
    });
    const form = this.sender(async () => {
      const body = text.value.trim();
      if (!body) { text.focus(); throw { code: "body" }; }
      const payload = { path: this.path, body, visitor: this.visitor, hp: trap.value };
      if (name.value.trim()) payload.author_name = name.value.trim();
      if (mail.value.trim()) Object.assign(payload, { author_email: mail.value.trim(), notify_replies: notify.checked });
      if (parent) payload.parent_id = parent.c.id;
      const r = await this.req("POST", "/comments", payload), said = T(r.status == "pending" ? "held" : "thanks");
      store.setItem("ovation.name", payload.author_name || "");
      const all = ownAll();
      all[r.id] = { t: r.edit_token, u: Date.parse(r.editable_until), b: body };
      ownSave(all);
      text.value = "";
      if (r.html) {
        const rec = this.put({ ...r, parent_id: payload.parent_id || null, depth: parent ? parent.c.depth + 1 : 0,
          author_name: payload.author_name, mine: true }, true);
        if (r.status == "approved") this.setCount(this.total + 1);
        if (parent) { this.closeReply(parent); this.announce(said); rec.li.focus(); }
      }
      return said;
    },
    h("label", { for: text.id }, parent ? T("replyTo", { name: parent.c.author_name || T("anon") }) : T("your")),
    text, h("p", { class: "you", id: id + "h" }, T("hint")),
    h("div", { class: "row" }, h("label", {}, T("name"), name), h("label", {}, T("email"), mail),
      h("label", { class: "chk" }, notify, T("notify"))),
    h("div", { class: "hp", "aria-hidden": "true" }, h("label", {}, "Leave this empty", trap)),
    h("div", { class: "row" }, h("button", { type: "submit", class: "go" }, T("post")),
      parent ? h("button", { type: "button", onclick: () => this.closeReply(parent) }, T("cancel")) : null));
    form.text = text;
    return form;
  }
  // New posts by e-mail: the server mails a confirmation link (double opt-in) and answers in
  // words that never tell whether the address was subscribed already.
  subscribe() {
    const mail = h("input", { id: "ov-s", type: "email", autocomplete: "email", maxlength: "254" });
    this.sub = this.sender(async () => {
      const r = await this.req("POST", "/subscriptions", { email: mail.value.trim(), list: "posts" })
        .catch(e => { throw e.code == "rate_limited" ? { code: "many" } : e; });  // a limit per hour and day
      mail.value = "";
      return r.message;  // the server's words, as in the e-mail and the page its link opens
    }, h("label", { for: "ov-s" }, this.t("subMail")), h("div", { class: "row" }, mail, h("button", { type: "submit" }, this.t("follow"))));
    this.sub.className = "sub";
    this.sub.hidden = true;
    return this.sub;
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
    const done = () => { rec.editing = false; this.fill(rec); rec.li.focus(); };
    text.value = own.b || "";
    rec.editing = true;
    const form = this.sender(async () => {
      const body = text.value.trim();
      if (!body) throw { code: "body" };
      const r = await this.req("PATCH", "/comments/" + rec.c.id, { edit_token: own.t, body });
      const all = ownAll();
      if (all[rec.c.id]) all[rec.c.id].b = body;
      ownSave(all);
      Object.assign(rec.c, { html: r.html, edited_at: rec.c.edited_at || new Date().toISOString() });
      done();
      this.announce(T("saved"));
    }, text, h("div", { class: "row" }, h("button", { type: "submit", class: "go" }, T("save")),
      h("button", { type: "button", onclick: done }, T("cancel"))));
    text.addEventListener("keydown", e => { if (e.key == "Escape") done(); });
    rec.li.querySelector(".body").replaceWith(form);
    rec.li.querySelector(".acts").hidden = true;
    text.focus();
  }
  async removeComment(rec, own) {
    try {
      await this.req("DELETE", "/comments/" + rec.c.id, { edit_token: own.t });
      if (rec.c.status == "approved") this.setCount(Math.max(0, this.total - 1));
      Object.assign(rec.c, GONE);
      const all = ownAll();
      delete all[rec.c.id];
      ownSave(all);
      this.fill(rec);
      rec.li.focus();
      this.announce(this.t("deleted"));
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
    if (f.type == "subscribed") this.apply(f.pages[0]);
    else if (f.type == "totals") this.apply(f);
    else if (f.type == "comment") this.incoming(f.comment);
    else if (f.type == "comment_edited") this.edited(f.id, { html: f.html, edited_at: f.edited_at });
    else if (f.type == "comment_deleted") this.edited(f.id, GONE);
    else if (f.type == "comment_removed") this.dropped(f.id);
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
    if (f.count != null) this.setCount(f.count);  // comment frames carry the new count
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
      // A refused subscription (503 while Redis restarts) leaves a socket that follows
      // nothing: drop it and connect again, with the usual backoff.
      if (f.type == "error" && !opened) return ws.close();
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
        this.req("GET", "/totals?" + new URLSearchParams({ path: this.path, visitor: this.visitor })),
        this.req("GET", "/comments?" + new URLSearchParams({ path: this.path, sort: "newest", limit: 50, visitor: this.visitor }))]);
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
