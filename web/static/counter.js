// Ovation's counter script for index pages: <script src="https://HOST/counter.js" data-site="SITE" async>
// fills every <span data-ovation-count="like" data-ovation-path="/post/"> (the path may sit on an
// ancestor instead) with one batch request. Counts: view, like, applause, a plugin's
// (`emoji.heart`, `stars.count`, `stars.avg`), comments.
(() => {
  const me = document.currentScript;
  if (!me) return;
  const api = (me.getAttribute("data-api") || new URL(me.src, location.href).origin).replace(/\/+$/, "");
  const site = encodeURIComponent(me.getAttribute("data-site") || "");
  const run = () => {
    const spots = [...document.querySelectorAll("[data-ovation-count]")];
    const pathOf = el => el.closest("[data-ovation-path]")?.getAttribute("data-ovation-path");
    const paths = [...new Set(spots.map(pathOf).filter(Boolean))];
    // The server takes up to 100 paths a batch: one request for any ordinary index page.
    for (let i = 0; i < paths.length; i += 100) {
      const chunk = paths.slice(i, i + 100);
      fetch(api + "/api/v1/sites/" + site + "/totals/batch", {
        method: "POST", credentials: "omit", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ paths: chunk })
      }).then(r => r.json()).then(answer => {
        const byPath = new Map(chunk.map((p, n) => [p, answer.pages[n]]));
        for (const el of spots) {
          const page = byPath.get(pathOf(el)), name = el.getAttribute("data-ovation-count");
          if (!page) continue;
          // "stars.avg": a score type's average, from its sum and count.
          const [type, part] = name.split("."), t = page.totals;
          const n = name == "comments" ? page.comments : part == "avg"
            ? (t[type + ".count"] ? (t[type + ".sum"] / t[type + ".count"]).toFixed(1) : null) : t[name];
          if (n != null) el.textContent = Number(n).toLocaleString(el.closest("[lang]")?.lang || undefined);
        }
      }).catch(() => {});
    }
  };
  if (document.readyState == "loading") document.addEventListener("DOMContentLoaded", run);
  else run();
})();
