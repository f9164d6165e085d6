// The demo page's script: plain JavaScript, no third-party requests, DOM text only.
(function () {
  "use strict";
  var root = document.getElementById("ovation-demo");
  var statusLine = document.getElementById("ovation-status");
  var site = root.dataset.site;
  var api = window.location.origin;
  var path = "/demo/hello-live-counters";
  var visitor = localStorage.getItem("ovation-visitor");
  if (!visitor) {
    visitor = "v-" + Array.from(crypto.getRandomValues(new Uint8Array(12)),
      function (b) { return b.toString(16).padStart(2, "0"); }).join("");
    localStorage.setItem("ovation-visitor", visitor);
  }

  function show(totals, mine) {
    Object.keys(totals).forEach(function (name) {
      var el = root.querySelector('[data-total="' + name + '"]');
      if (el) el.textContent = totals[name].toLocaleString();
    });
    if (mine) {
      var like = root.querySelector('[data-action="like"]');
      like.setAttribute("aria-pressed", mine.like ? "true" : "false");
      var clapped = root.querySelector('[data-mine="applause"]');
      clapped.textContent = mine.applause ? "(you: " + mine.applause + ")" : "";
    }
  }

  function interact(reaction, action, amount) {
    return fetch(api + "/api/v1/sites/" + site + "/interactions", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ path: path, reaction: reaction, action: action,
                             amount: amount || 1, visitor: visitor })
    }).then(function (r) { return r.json(); }).then(function (body) {
      if (body.error) { statusLine.textContent = body.error.message; return; }
      show(body.totals, body.visitor);
    });
  }

  var liked = false;
  root.querySelector('[data-action="like"]').addEventListener("click", function () {
    liked = this.getAttribute("aria-pressed") === "true";
    interact("like", liked ? "remove" : "add");
  });
  var clap = root.querySelector('[data-action="applause"]');
  var holdTimer = null;
  clap.addEventListener("click", function () { interact("applause", "add", 1); });
  clap.addEventListener("pointerdown", function () {
    holdTimer = setInterval(function () { interact("applause", "add", 3); }, 300);
  });
  ["pointerup", "pointerleave"].forEach(function (name) {
    clap.addEventListener(name, function () { clearInterval(holdTimer); });
  });

  var delay = 500;
  function connect() {
    var ws = new WebSocket(api.replace(/^http/, "ws") + "/api/v1/sites/" + site + "/live");
    ws.onopen = function () {
      delay = 500;
      statusLine.textContent = "live";
      ws.send(JSON.stringify({ type: "subscribe", paths: [path], visitor: visitor }));
    };
    ws.onmessage = function (message) {
      var frame = JSON.parse(message.data);
      if (frame.type === "subscribed") show(frame.pages[0].totals, frame.pages[0].visitor);
      if (frame.type === "totals") show(frame.totals);
    };
    ws.onclose = function () {
      statusLine.textContent = "reconnecting…";
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 15000);
    };
  }
  interact("view", "add").then(connect);
})();
