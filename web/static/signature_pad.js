// The check-in signature pad (R6.1.4): the patient signs on a <canvas> with finger, stylus or mouse
// (pointer events); the PNG is uploaded to the API, which answers a reference and the image's
// SHA-256. Only those two go into the check-in form: the image never travels with the task.
(function () {
  "use strict";

  function setup() {
    var box = document.getElementById("signature");
    if (!box) return;
    var canvas = document.getElementById("sig-canvas"), ctx = canvas.getContext("2d");
    var status = document.getElementById("sig-status");
    var ref = document.getElementById("f-signature_ref"), hash = document.getElementById("f-signature_sha256");
    var form = canvas.closest("form");
    var inked = false, saved = false, drawing = null;

    [ref, hash].forEach(function (el) { if (el) el.readOnly = true; });
    ctx.lineWidth = 2.5; ctx.lineCap = "round"; ctx.lineJoin = "round"; ctx.strokeStyle = "#111";

    var say = function (text, bad) { status.textContent = text; status.classList.toggle("error", !!bad); };
    var point = function (ev) {  // CSS pixels -> canvas pixels (the pad may be drawn scaled)
      var r = canvas.getBoundingClientRect();
      return { x: (ev.clientX - r.left) * canvas.width / r.width, y: (ev.clientY - r.top) * canvas.height / r.height };
    };
    var forget = function () {  // a new stroke after saving means a new image to upload
      saved = false;
      if (ref) ref.value = "";
      if (hash) hash.value = "";
    };

    canvas.style.touchAction = "none";  // no scrolling while signing on a tablet
    canvas.addEventListener("pointerdown", function (ev) {
      ev.preventDefault();
      canvas.setPointerCapture(ev.pointerId);
      drawing = point(ev);
      ctx.beginPath(); ctx.arc(drawing.x, drawing.y, ctx.lineWidth / 2, 0, 2 * Math.PI); ctx.fillStyle = "#111"; ctx.fill();
      inked = true; forget(); say("");
    });
    canvas.addEventListener("pointermove", function (ev) {
      if (!drawing) return;
      var p = point(ev);
      ctx.beginPath(); ctx.moveTo(drawing.x, drawing.y); ctx.lineTo(p.x, p.y); ctx.stroke();
      drawing = p;
    });
    ["pointerup", "pointercancel", "pointerleave"].forEach(function (name) {
      canvas.addEventListener(name, function () { drawing = null; });
    });

    document.getElementById("sig-clear").addEventListener("click", function () {
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      inked = false; forget(); say("");
    });

    var upload = function () {
      if (!inked) { say(box.dataset.msgEmpty, true); return Promise.resolve(false); }
      say(box.dataset.msgSaving);
      var body = {
        accession_number: box.dataset.accession, notices: box.dataset.notices.split(",").filter(Boolean),
        lang: box.dataset.noticeLang, image: canvas.toDataURL("image/png"),
      };
      return fetch(box.dataset.uploadUrl, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "Accept": "application/json" }, body: JSON.stringify(body),
      }).then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (data) {
          if (!r.ok) {
            var why = typeof data.detail === "string" ? data.detail
              : (data.detail || data.errors || []).map(function (e) { return e.msg; }).join("; ");
            say(box.dataset.msgFailed + ": " + (why || r.status), true);
            return false;
          }
          if (ref) ref.value = data.signature_ref;
          if (hash) hash.value = data.signature_sha256;
          saved = true;
          say(box.dataset.msgSaved + " · SHA-256 " + data.signature_sha256.slice(0, 12) + "…");
          return true;
        });
      }).catch(function (err) { say(box.dataset.msgFailed + ": " + err, true); return false; });
    };

    document.getElementById("sig-save").addEventListener("click", function () { upload(); });

    // An electronic consent ticked as signed needs the patient's signature on the pad.
    var needsSignature = function () {
      var method = form.querySelector('[name="consent_method"]');
      var ticked = form.querySelectorAll('input[name="signed"]:checked').length > 0;
      return ticked && (!method || !method.value || method.value === "electronic");
    };
    // Completing check-in with a drawn but unsaved signature uploads it first, then submits.
    if (form) {
      form.addEventListener("submit", function (ev) {
        if (saved || (ref && ref.value)) return;
        if (!inked) {
          if (needsSignature()) { ev.preventDefault(); say(box.dataset.msgEmpty, true); }
          return;
        }
        ev.preventDefault();
        upload().then(function (ok) { if (ok) form.submit(); });
      });
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup);
  else setup();
})();
