// RadLoop pages: the few live parts, no framework. Every behaviour is opted into by a data- attribute.
(function () {
  "use strict";
  var pad = function (n) { return (n < 10 ? "0" : "") + n; };
  var mmss = function (s) { s = Math.max(0, Math.floor(s)); return Math.floor(s / 60) + ":" + pad(s % 60); };

  // Idle timeout: the server ends a session unused this long; show what is left, then reload
  // (the server answers with the login page saying the session timed out).
  function idleCountdown() {
    var secs = parseInt(document.body.dataset.idleSeconds || "0", 10), out = document.getElementById("idle-left");
    if (!secs || !out) return;
    var end = Date.now() + secs * 1000;
    setInterval(function () {
      var left = (end - Date.now()) / 1000;
      out.textContent = mmss(left);
      out.parentNode.classList.toggle("soon", left < 120);
      if (left <= 0) location.reload();
    }, 1000);
  }

  // Elapsed clocks (critical values): counting up from data-since, red past data-deadline seconds.
  function clocks() {
    var now = Date.now();
    document.querySelectorAll("[data-since]").forEach(function (el) {
      var start = Date.parse(el.dataset.since), stop = el.dataset.stopped ? Date.parse(el.dataset.stopped) : now;
      var secs = (stop - start) / 1000;
      el.textContent = mmss(secs);
      el.classList.toggle("late", secs > parseInt(el.dataset.deadline || "600", 10));
    });
    document.querySelectorAll("[data-clock]").forEach(function (el) {
      var d = new Date(now); el.textContent = pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
    });
  }

  // Live regions: fetch data-refresh-url every data-refresh-seconds and swap the content,
  // unless someone is typing in it (an acknowledgment half written is never thrown away).
  function refreshers() {
    document.querySelectorAll("[data-refresh-url]").forEach(function (el) {
      var every = parseInt(el.dataset.refreshSeconds || "5", 10) * 1000;
      var busy = function () {
        var active = document.activeElement;
        if (active && el.contains(active) && /INPUT|TEXTAREA|SELECT|BUTTON/.test(active.tagName)) return true;
        if (el.querySelector(".field-error")) return true;  // a refusal stays until the person acts on it
        return Array.prototype.some.call(el.querySelectorAll("textarea"), function (t) { return t.value; });
      };
      setInterval(function () {
        if (busy()) return;
        fetch(el.dataset.refreshUrl, { credentials: "same-origin", headers: { "Accept": "text/html" } })
          .then(function (r) { if (r.status === 401) { location.reload(); return null; } return r.ok ? r.text() : null; })
          // checked again on arrival: someone may have started typing while the request was out
          .then(function (html) { if (html !== null && !busy()) { el.innerHTML = html; clocks(); } })
          .catch(function () {});
      }, every);
    });
  }

  // Queue screens follow the queue feed (Server-Sent Events); names arrive masked.
  function queueScreen() {
    var screen = document.querySelector("[data-sse-url]");
    if (!screen || !window.EventSource) return;
    var state = document.getElementById("live-state");
    var source = new EventSource(screen.dataset.sseUrl, { withCredentials: true });
    source.onopen = function () { state.textContent = state.dataset.ok; };
    source.onerror = function () { state.textContent = state.dataset.lost; };
    source.addEventListener("board", function (ev) {
      var b = JSON.parse(ev.data);
      if (b.room_id !== screen.dataset.room) return;
      document.getElementById("now-calling").textContent = b.current || "—";
      document.getElementById("waiting-count").textContent = b.waiting;
      var list = document.getElementById("next-list");
      list.innerHTML = "";
      b.next.forEach(function (name) { var li = document.createElement("li"); li.textContent = name; list.appendChild(li); });
      state.textContent = state.dataset.ok;
    });
  }

  // Phrase insertion in report fields: at the cursor, on its own line.
  function phrases() {
    document.addEventListener("click", function (ev) {
      var btn = ev.target.closest("[data-insert]");
      if (!btn) return;
      var area = document.getElementById(btn.dataset.target), text = btn.dataset.insert;
      var at = area.selectionStart || area.value.length, before = area.value.slice(0, at);
      var sep = before && !/\n$/.test(before) ? "\n" : "";
      area.value = before + sep + text + area.value.slice(at);
      area.focus();
      area.selectionStart = area.selectionEnd = at + sep.length + text.length;
      area.dispatchEvent(new Event("input", { bubbles: true }));  // diff and hints follow
    });
  }

  // Report editor: the diff against the compared version, redrawn while typing. Word level like
  // web/report_diff.py (a CJK character is a word); longest common subsequence of the tokens.
  var TOKEN = /[\u3400-\u9fff\uf900-\ufaff]|[A-Za-z0-9_]+|\s+|[\s\S]/g;
  function diffTokens(a, b) {
    var n = a.length, m = b.length, out = [];
    if (n * m > 4e6) return [["del", a.join("")], ["ins", b.join("")]];  // too long to align: whole text
    var w = m + 1, L = new Uint16Array((n + 1) * w);
    for (var i = n - 1; i >= 0; i--) for (var j = m - 1; j >= 0; j--)
      L[i * w + j] = a[i] === b[j] ? L[(i + 1) * w + j + 1] + 1 : Math.max(L[(i + 1) * w + j], L[i * w + j + 1]);
    var push = function (op, t) { var last = out[out.length - 1]; if (last && last[0] === op) last[1] += t; else out.push([op, t]); };
    i = 0; j = 0;
    while (i < n && j < m) {
      if (a[i] === b[j]) { push("same", a[i]); i++; j++; }
      else if (L[(i + 1) * w + j] >= L[i * w + j + 1]) push("del", a[i++]);
      else push("ins", b[j++]);
    }
    while (i < n) push("del", a[i++]);
    while (j < m) push("ins", b[j++]);
    return out;
  }
  function liveDiffs() {
    document.querySelectorAll(".inline-diff[data-for]").forEach(function (box) {
      var area = document.getElementById(box.dataset.for), timer = null;
      if (!area) return;
      area.addEventListener("input", function () {
        clearTimeout(timer);
        timer = setTimeout(function () {
          var parts = diffTokens(box.dataset.old.match(TOKEN) || [], area.value.match(TOKEN) || []);
          box.innerHTML = "";
          parts.forEach(function (p) {
            var el = document.createElement(p[0] === "same" ? "span" : p[0]);
            el.textContent = p[1]; box.appendChild(el);
          });
        }, 250);
      });
    });
  }

  // Report editor: choosing a dictionary item (or taking a hint) sets the critical flag and,
  // when empty, the finding's wording; the hints follow the text (the API's text rules).
  function criticalPicker() {
    var select = document.getElementById("f-critical_item_code"), hints = document.getElementById("critical-hints");
    if (!select) return;
    var flag = document.getElementById("f-critical"), finding = document.getElementById("f-critical_finding");
    var choose = function (code) {
      select.value = code;
      var opt = select.selectedOptions[0];
      if (!code || !opt) return;
      if (flag) flag.checked = true;
      if (finding && !finding.value.trim()) finding.value = opt.dataset.name || "";
    };
    select.addEventListener("change", function () { choose(select.value); });
    if (!hints) return;
    hints.addEventListener("click", function (ev) {
      var btn = ev.target.closest("[data-item]");
      if (btn) choose(btn.dataset.item);
    });
    var timer = null, list = hints.querySelector("ul"), none = list.querySelector(".none");
    var noneText = none ? none.textContent : "";
    var refresh = function () {
      var text = ["f-findings", "f-impression"].map(function (id) { var el = document.getElementById(id); return el ? el.value : ""; }).join("\n");
      if (!text.trim()) return;
      var body = { text: text };
      if (/^[A-Z]{2,4}$/.test(hints.dataset.modality || "")) body.modality = hints.dataset.modality;
      fetch("/api/v1/critical-values/suggestions", { method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (items) {
          if (!items) return;
          list.innerHTML = "";
          items.forEach(function (s) {
            var li = document.createElement("li"), btn = document.createElement("button"), small = document.createElement("small");
            var opt = select.querySelector('option[value="' + s.code + '"]');
            btn.type = "button"; btn.className = "hint"; btn.dataset.item = s.code;
            btn.textContent = opt ? opt.dataset.name : s.code;
            small.textContent = " …" + s.excerpt + "…";
            li.appendChild(btn); li.appendChild(small); list.appendChild(li);
          });
          if (!items.length) { var li = document.createElement("li"); li.className = "none"; li.textContent = noneText; list.appendChild(li); }
        })
        .catch(function () {});
    };
    ["f-findings", "f-impression"].forEach(function (id) {
      var el = document.getElementById(id);
      if (el) el.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(refresh, 800); });
    });
  }

  // Language: a cookie the server reads; no language in URLs.
  function language() {
    document.querySelectorAll("[data-lang]").forEach(function (btn) {
      btn.addEventListener("click", function () {
        document.cookie = "radloop_lang=" + btn.dataset.lang + "; path=/; SameSite=Strict";
        location.reload();
      });
    });
  }

  // Keyboard: j / k move between inbox tasks, Enter opens the focused one.
  function inboxKeys() {
    var links = Array.prototype.slice.call(document.querySelectorAll("a.task-link"));
    if (!links.length) return;
    document.addEventListener("keydown", function (ev) {
      if (/INPUT|TEXTAREA|SELECT/.test(document.activeElement.tagName) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
      var i = links.indexOf(document.activeElement);
      if (ev.key === "j") { links[Math.min(i + 1, links.length - 1)].focus(); ev.preventDefault(); }
      if (ev.key === "k") { links[Math.max(i - 1, 0)].focus(); ev.preventDefault(); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    idleCountdown(); clocks(); setInterval(clocks, 1000); refreshers(); queueScreen(); phrases(); liveDiffs(); criticalPicker(); language(); inboxKeys();
  });
})();
