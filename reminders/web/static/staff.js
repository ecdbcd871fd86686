/* Staff UI: confirmations, and the template editor's live preview and SMS meter. No framework. */
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  });

  // Mirrors reminders/channels/segments.py: GSM-7 unless a character needs UCS-2.
  var GSM7_BASIC = new Set(Array.from(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"));
  var GSM7_EXTENSION = new Set(Array.from("^{}\\[~]|€\f"));  // two septets each

  function isGsm(ch) { return GSM7_BASIC.has(ch) || GSM7_EXTENSION.has(ch); }

  function smsLength(text) {
    var chars = Array.from(text);
    var units, single, multi, encoding;
    if (chars.every(isGsm)) {
      units = chars.reduce(function (n, ch) { return n + (GSM7_EXTENSION.has(ch) ? 2 : 1); }, 0);
      single = 160; multi = 153; encoding = "GSM-7";
    } else {
      units = text.length;  // UTF-16 code units, as UCS-2 counts them
      single = 70; multi = 67; encoding = "UCS-2";
    }
    var segments = units <= single ? (units ? 1 : 0) : Math.ceil(units / multi);
    return {encoding: encoding, units: units, segments: segments, characters: chars.length,
            perSegment: units <= single ? single : multi,
            offenders: Array.from(new Set(chars.filter(function (ch) { return !isGsm(ch); })))};
  }
  window.smsLength = smsLength;

  var editor = document.querySelector(".editor");
  if (!editor) { return; }
  var source = document.getElementById("source");
  var errorBox = document.getElementById("template-error");
  var preview = document.getElementById("preview");
  var frame = document.getElementById("preview-frame");
  var meter = document.getElementById("sms-meter");
  var warning = document.getElementById("sms-warning");
  var token = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var url = editor.getAttribute("data-preview-url");
  var timer = null;
  var sequence = 0;

  function showMeter(text, server) {
    if (!meter) { return; }
    var length = smsLength(text);
    meter.textContent = length.characters + " characters · " + length.encoding + " · " +
      length.segments + " segment" + (length.segments === 1 ? "" : "s");
    meter.className = "meter" + (length.segments > 1 || length.encoding !== "GSM-7" ? " meter-warn" : "");
    if (server) { meter.setAttribute("data-server-units", String(server.units)); }
    var notes = [];
    if (length.encoding !== "GSM-7") {
      notes.push("UCS-2 because of " + length.offenders.join(" ") + ": each segment holds 70 characters, not 160.");
    }
    if (length.segments > 1) {
      notes.push("Sent as " + length.segments + " parts of up to " + length.perSegment + " and billed per part.");
    }
    warning.textContent = notes.join(" ");
    warning.hidden = notes.length === 0;
  }

  function showResult(data) {
    if (data.ok) {
      errorBox.hidden = true;
      errorBox.textContent = "";
      source.removeAttribute("aria-invalid");
      editor.classList.remove("is-stale");
      if (frame) { frame.srcdoc = data.text; } else { preview.textContent = data.text; }
      showMeter(data.text, data.sms);
    } else {
      errorBox.textContent = data.message || "This template cannot be used.";
      errorBox.hidden = false;
      source.setAttribute("aria-invalid", "true");
      editor.classList.add("is-stale");
    }
  }

  function refresh() {
    var mine = ++sequence;
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": token, "Accept": "application/json"},
      body: JSON.stringify({source: source.value})
    }).then(function (response) {
      return response.json();
    }).then(function (data) {
      if (mine === sequence) { showResult(data); }
      // Previews run a few at a time; a busy answer is tried again shortly.
      if (data.busy && mine === sequence) { window.setTimeout(function () { if (mine === sequence) { refresh(); } }, 2000); }
    }).catch(function () {
      if (mine === sequence) { showResult({ok: false, message: "The preview is unavailable (is the connection down?)"}); }
    });
  }

  source.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, 200);
  });
  if (meter && preview && errorBox.hidden) { showMeter(preview.textContent); }
}());

/* --- Inbox: the reply box (segment counter, saved replies) --------------------------------- */
(function () {
  "use strict";
  // The conversation beside an item opens on its newest messages (a reply just sent included).
  var thread = document.querySelector(".thread");
  if (thread) { thread.scrollTop = thread.scrollHeight; }
  var box = document.getElementById("reply-body");
  var meter = document.getElementById("reply-meter");
  if (!box || !meter || !window.smsLength) { return; }

  function show() {
    var length = window.smsLength(box.value);
    var text = length.characters + " characters · " + length.segments + " text" + (length.segments === 1 ? "" : "s");
    if (length.segments > 1) { text += " (sent in " + length.segments + " parts)"; }
    if (length.encoding !== "GSM-7") { text += " · special characters: 70 per part"; }
    meter.textContent = text;
    meter.className = "meter reply-meter" + (length.segments > 1 || length.encoding !== "GSM-7" ? " meter-warn" : "");
  }

  var saved = document.querySelector(".saved-replies");
  if (saved) {
    saved.addEventListener("change", function () {
      if (!saved.value) { return; }
      box.value = saved.value;
      show();
      box.focus();
    });
  }
  box.addEventListener("input", show);
  show();
}());
