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
    // The budget of a default text (segments.py `segments_allowed`): 2 GSM-7 segments, or the UCS-2 ones
    // that hold as many characters (5).
    var allowed = encoding === "GSM-7" ? 2 : Math.ceil(2 * 153 / 67);
    return {encoding: encoding, units: units, segments: segments, characters: chars.length, allowed: allowed,
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
    if (length.segments > length.allowed) {
      notes.push("Over the " + length.allowed + " " + length.encoding + " segments a text keeps to.");
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

/* --- Live: menu badges, the escalation banner, sound alerts and self-updating pages. ---
   Polls /live.json (counts and a change stamp, no patient data) every few seconds. A new
   escalation shows the red banner in a polite live region and beeps when sound alerts are on
   (the browser allows sound only after a click: the "Turn on sound alerts" button, remembered in
   localStorage). Today, Escalations and Inbox (body[data-live-reload]) reload when the stamp
   changes, but never while someone is typing in a form on them: then a notice offers the reload. */
(function () {
  "use strict";

  var body = document.body;
  var url = body.getAttribute("data-live-url");
  if (!url || !window.fetch) { return; }
  var SOUND_KEY = "reminders.soundAlerts";
  var SEEN_KEY = "reminders.seenEscalation";
  var ANNOUNCE_KEY = "reminders.liveAnnounce";
  var stamp = body.getAttribute("data-live-stamp");
  var reloads = body.hasAttribute("data-live-reload");
  var escalationsUrl = body.getAttribute("data-live-escalations-url") || "/escalations/";
  var pollMs = 4000;
  var audio = null;
  var soundButton = document.getElementById("sound-toggle");
  var region = document.getElementById("live-alert");
  var note = null;

  function storage(method, key, value) {
    try { return window.localStorage[method](key, value); } catch (e) { return null; }
  }

  // --- Sound ------------------------------------------------------------------------------------
  function soundOn() { return storage("getItem", SOUND_KEY) === "on"; }

  function audioContext() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) { return null; }
    if (!audio) { audio = new Context(); }
    if (audio.state === "suspended") { audio.resume(); }
    return audio;
  }

  function beep() {
    var context = audioContext();
    if (!context) { return; }
    var start = context.currentTime + 0.02;
    [0, 0.35, 0.7].forEach(function (offset) {  // three short high tones, hard to miss in a busy room
      var osc = context.createOscillator();
      var gain = context.createGain();
      osc.type = "square";
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.0001, start + offset);
      gain.gain.exponentialRampToValueAtTime(0.25, start + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.25);
      osc.connect(gain).connect(context.destination);
      osc.start(start + offset);
      osc.stop(start + offset + 0.3);
    });
    // How many alerts sounded in this tab (kept across the page's own reloads): for a glance in the tests.
    var beeps = Number(sessionValue("reminders.beeps") || 0) + 1;
    sessionValue("reminders.beeps", String(beeps));
    if (soundButton) { soundButton.setAttribute("data-beeps", String(beeps)); }
  }

  function sessionValue(key, value) {
    try {
      if (value === undefined) { return window.sessionStorage.getItem(key); }
      window.sessionStorage.setItem(key, value);
    } catch (e) { /* private mode: nothing kept */ }
    return null;
  }

  function showSoundButton() {
    if (!soundButton) { return; }
    var on = soundOn();
    soundButton.hidden = false;
    soundButton.textContent = on ? "Turn off sound alerts" : "Turn on sound alerts";
    soundButton.setAttribute("aria-pressed", on ? "true" : "false");
  }

  if (soundButton) {
    soundButton.setAttribute("data-beeps", sessionValue("reminders.beeps") || "0");
    soundButton.addEventListener("click", function () {
      if (soundOn()) {
        storage("setItem", SOUND_KEY, "off");
      } else {
        storage("setItem", SOUND_KEY, "on");
        beep();  // this click is the one the browser needs; the beep says what an alert sounds like
      }
      showSoundButton();
    });
    showSoundButton();
  }
  if (soundOn()) {
    // Remembered as on: the browser still wants a click or key on this page before it plays sound.
    var wake = function () {
      audioContext();
      document.removeEventListener("pointerdown", wake, true);
      document.removeEventListener("keydown", wake, true);
    };
    document.addEventListener("pointerdown", wake, true);
    document.addEventListener("keydown", wake, true);
  }

  // --- Badges and the banner --------------------------------------------------------------------
  function setBadge(name, count) {
    var badge = document.querySelector('[data-live-badge="' + name + '"]');
    if (!badge) { return; }
    var number = badge.querySelector("[data-live-number]");
    if (number && number.textContent !== String(count)) {
      number.textContent = String(count);
      badge.classList.add("is-new");
      window.setTimeout(function () { badge.classList.remove("is-new"); }, 600);
    }
    badge.hidden = !count;
  }

  function setBanner(data, isNew) {
    if (!region) { return; }
    var count = data.open_escalations;
    var banner = region.querySelector(".alert-banner");
    if (!count) {
      region.textContent = "";
      return;
    }
    if (!banner) {
      banner = document.createElement("a");
      banner.className = "alert-banner";
      banner.appendChild(document.createElement("strong"));
      var span = document.createElement("span");
      span.textContent = "A patient may be in crisis. Open the queue and acknowledge once someone has acted.";
      banner.appendChild(span);
      region.textContent = "";
      region.appendChild(banner);
    }
    banner.href = escalationsUrl + (data.newest_open_escalation_id ? "#escalation-" + data.newest_open_escalation_id : "");
    var strong = banner.querySelector("strong");
    var shown = Number(banner.getAttribute("data-count") || 0);
    // "New" stays until the count goes down (someone is on it) or the page is left.
    var fresh = isNew || (banner.classList.contains("is-new") && count >= shown);
    var text = (fresh ? "New escalation: " : "") + count + " open escalation" + (count === 1 ? "" : "s");
    if (strong.textContent !== text) { strong.textContent = text; }  // unchanged text: nothing re-announced
    banner.setAttribute("data-count", String(count));
    banner.classList.toggle("is-new", fresh);
  }

  // --- Reloading a live page's content ----------------------------------------------------------
  function typing() {
    var active = document.activeElement;
    if (active && active.matches && active.matches("input, textarea, select, [contenteditable]")) {
      return true;
    }
    var fields = document.querySelectorAll("main input, main textarea, main select");
    for (var i = 0; i < fields.length; i++) {
      var field = fields[i];
      if (field.type === "hidden" || field.type === "submit" || field.type === "button") { continue; }
      if (field.type === "checkbox" || field.type === "radio") {
        if (field.checked !== field.defaultChecked) { return true; }
      } else if (field.tagName === "SELECT") {
        for (var j = 0; j < field.options.length; j++) {
          if (field.options[j].selected !== field.options[j].defaultSelected) { return true; }
        }
      } else if (field.value !== field.defaultValue) {
        return true;
      }
    }
    return false;
  }

  function showNote() {
    if (note) { note.hidden = false; return; }
    note = document.createElement("div");
    note.className = "live-note";
    note.setAttribute("role", "status");
    var text = document.createElement("span");
    text.textContent = "This page has new changes.";
    var button = document.createElement("button");
    button.type = "button";
    button.className = "btn";
    button.textContent = "Show them";
    button.addEventListener("click", function () { window.location.reload(); });
    note.appendChild(text);
    note.appendChild(button);
    body.appendChild(note);
  }

  function reloadWhenFree() {
    if (typing()) { showNote(); return; }
    window.location.reload();  // the browser keeps the scroll position on a reload
  }

  // --- The poll ---------------------------------------------------------------------------------
  var pending = false;
  var seen = Number(storage("getItem", SEEN_KEY));
  var pageNewest = Number(body.getAttribute("data-live-newest") || 0);
  if (!seen || seen > pageNewest) { seen = pageNewest; storage("setItem", SEEN_KEY, String(seen)); }

  var announced = null;
  try { announced = window.sessionStorage.getItem(ANNOUNCE_KEY); window.sessionStorage.removeItem(ANNOUNCE_KEY); } catch (e) { announced = null; }
  if (announced && region) {
    // The page was reloaded for a new escalation: say it again, now that the region is in place.
    window.setTimeout(function () {
      setBanner({open_escalations: Number(announced.split(":")[0]),
                 newest_open_escalation_id: Number(announced.split(":")[1])}, true);
    }, 300);
  }

  function handle(data) {
    setBadge("open_escalations", data.open_escalations);
    setBadge("inbox_waiting", data.inbox_waiting);
    var newest = Number(data.newest_escalation_id || 0);
    var isNew = newest > seen && data.open_escalations > 0;
    if (newest > seen) { seen = newest; storage("setItem", SEEN_KEY, String(newest)); }
    setBanner(data, isNew);
    if (isNew && soundOn()) { beep(); }
    if (data.poll_seconds) { pollMs = Math.max(2000, data.poll_seconds * 1000); }
    if (data.stamp !== stamp) {
      stamp = data.stamp;
      if (reloads) {
        pending = true;
        if (isNew) {
          try { window.sessionStorage.setItem(ANNOUNCE_KEY, data.open_escalations + ":" + (data.newest_open_escalation_id || "")); } catch (e) { /* private mode */ }
        }
      }
    }
    // After a new escalation's beep has played (a reload would cut it short).
    if (pending) { window.setTimeout(reloadWhenFree, isNew ? 1200 : 0); }
  }

  function poll() {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}, cache: "no-store"})
      .then(function (response) {
        if (response.status === 401) { throw new Error("signed out"); }
        return response.ok ? response.json() : null;
      })
      .then(function (data) {
        if (data) { handle(data); }
        window.setTimeout(poll, pollMs);
      })
      .catch(function (error) {
        if (error && error.message === "signed out") { return; }  // the next click goes to sign-in
        window.setTimeout(poll, pollMs * 2);  // the connection is down: try again, a little slower
      });
  }
  window.setTimeout(poll, pollMs);
}());
