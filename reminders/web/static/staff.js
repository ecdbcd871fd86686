/* Staff UI: confirmations, and the SMS length the template editor and the reply box count. No framework. */
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  });

  // Mirrors reminders/text_segments.py: GSM-7 unless a character needs UCS-2.
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
    // The budget of a default text (text_segments.py `segments_allowed`): 2 GSM-7 segments, or the UCS-2 ones
    // that hold as many characters (5).
    var allowed = encoding === "GSM-7" ? 2 : Math.ceil(2 * 153 / 67);
    return {encoding: encoding, units: units, segments: segments, characters: chars.length, allowed: allowed,
            perSegment: units <= single ? single : multi,
            offenders: Array.from(new Set(chars.filter(function (ch) { return !isGsm(ch); })))};
  }
  window.smsLength = smsLength;

  // The template editor's live preview: template_editor.js (loaded by its page).
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
      span.textContent = "Nobody has taken it yet: open the queue and press \u201cI'm on it\u201d.";
      banner.appendChild(span);
      region.textContent = "";
      region.appendChild(banner);
    }
    banner.href = escalationsUrl + (data.newest_open_escalation_id ? "#escalation-" + data.newest_open_escalation_id : "");
    var strong = banner.querySelector("strong");
    var shown = Number(banner.getAttribute("data-count") || 0);
    // "New" stays until the count goes down (someone is on it) or the page is left.
    var fresh = isNew || (banner.classList.contains("is-new") && count >= shown);
    var kind = data.newest_open_escalation_kind;  // "Medical emergency", "Suicide risk", "Urgent"
    var text = (fresh ? "New escalation: " : "") + count + " open escalation" + (count === 1 ? "" : "s") +
      (kind ? " (" + (count === 1 ? "" : "newest: ") + kind.toLowerCase() + ")" : "");
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

  // --- the provider banner and messages' states, updated in place -------------------------
  // The banner region (base.html #provider-status) is a polite status: a banner that appears,
  // changes or clears is read out once; one that stays the same is left alone.
  var providerRegion = document.getElementById("provider-status");

  function providerBanner(item) {
    var el = document.createElement("div");
    el.className = "provider-banner";
    el.setAttribute("data-provider", item.channel);
    var strong = document.createElement("strong");
    strong.textContent = item.headline;
    var span = document.createElement("span");
    span.appendChild(document.createTextNode(item.detail + " "));
    if (item.alerts) {
      var link = document.createElement("a");
      link.href = escalationsUrl;
      link.textContent = item.alerts;
      span.appendChild(link);
      span.appendChild(document.createTextNode(" "));
    }
    span.appendChild(document.createTextNode(item.advice));
    el.appendChild(strong);
    el.appendChild(span);
    return el;
  }

  function setProviders(list) {
    if (!providerRegion || !list) { return; }
    var wanted = {};
    list.forEach(function (item) { wanted[item.channel] = item; });
    Array.prototype.forEach.call(providerRegion.querySelectorAll("[data-provider]"), function (el) {
      var channel = el.getAttribute("data-provider");
      if (wanted[channel] || el.classList.contains("provider-recovered")) { return; }
      var done = document.createElement("div");
      done.className = "provider-banner provider-recovered";
      done.setAttribute("data-provider", channel);
      done.textContent = el.getAttribute("data-recovered") || "Messages are going out again.";
      providerRegion.replaceChild(done, el);
      window.setTimeout(function () { if (done.parentNode) { done.parentNode.removeChild(done); } }, 30000);
    });
    list.forEach(function (item) {
      var el = providerRegion.querySelector('[data-provider="' + item.channel + '"]');
      if (el && el.getAttribute("data-key") === item.key) { return; }  // unchanged: nothing re-announced
      var fresh = providerBanner(item);
      fresh.setAttribute("data-key", item.key);
      fresh.setAttribute("data-recovered", item.recovered || "");
      var details = el && el.querySelector("details");
      if (details) { fresh.appendChild(details); }  // the admins' raw error, as the page had it
      if (el) { providerRegion.replaceChild(fresh, el); } else { providerRegion.appendChild(fresh); }
    });
  }

  // Elements showing a message's state (data-outbox-id, data-state, the words for each state in
  // data-words-<state>): those still waiting are asked about in each poll.
  function waitingIds() {
    var ids = [];
    Array.prototype.forEach.call(document.querySelectorAll('[data-outbox-id][data-state="waiting"]'), function (el) {
      ids.push(el.getAttribute("data-outbox-id"));
    });
    return ids;
  }

  function setStates(states) {
    if (!states) { return; }
    Array.prototype.forEach.call(document.querySelectorAll("[data-outbox-id][data-state]"), function (el) {
      var state = states[el.getAttribute("data-outbox-id")];
      if (!state || state === el.getAttribute("data-state")) { return; }
      el.setAttribute("data-state", state);
      var words = el.getAttribute("data-words-" + state.replace(" ", "-"));
      if (words) { el.textContent = words; }
    });
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
      var said = announced.split(":");
      setBanner({open_escalations: Number(said[0]), newest_open_escalation_id: Number(said[1]),
                 newest_open_escalation_kind: said[2] || null}, true);
    }, 300);
  }

  function handle(data) {
    setProviders(data.providers);
    setStates(data.outbox);
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
          try { window.sessionStorage.setItem(ANNOUNCE_KEY, data.open_escalations + ":" + (data.newest_open_escalation_id || "") + ":" + (data.newest_open_escalation_kind || "")); } catch (e) { /* private mode */ }
        }
      }
    }
    // After a new escalation's beep has played (a reload would cut it short).
    if (pending) { window.setTimeout(reloadWhenFree, isNew ? 1200 : 0); }
  }

  function poll() {
    var ids = waitingIds();
    fetch(ids.length ? url + "?outbox=" + ids.join(",") : url, {credentials: "same-origin", headers: {"Accept": "application/json"}, cache: "no-store"})
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

/* --- accessibility: a refused form's errors take the focus; boxes that scroll take the keyboard. */
(function () {
  "use strict";
  // The page is a form sent back with errors: a screen reader and the keyboard start at what to fix.
  var summary = document.querySelector(".error-summary");
  if (summary) { summary.focus(); }

  // A box that scrolls on its own must be reachable by keyboard, or keyboard users cannot scroll it
  // (WCAG 2.1.1). Whether it scrolls depends on the window's size, so this is checked again on resize.
  var SCROLLERS = ".table-wrap, .chart-table-wrap, .thread, .code-view";
  function scrolls(el) { return el.scrollHeight > el.clientHeight + 1 || el.scrollWidth > el.clientWidth + 1; }
  function named(el) {
    var caption = el.querySelector("caption, h2, h3");
    return caption ? caption.textContent.replace(/\s+/g, " ").trim() : "Scrolling content";
  }
  function reachable() {
    Array.prototype.forEach.call(document.querySelectorAll(SCROLLERS), function (el) {
      var added = el.hasAttribute("data-scroll-focus");
      if (scrolls(el) && !added && !el.hasAttribute("tabindex")) {
        el.setAttribute("tabindex", "0");
        el.setAttribute("data-scroll-focus", "");
        // A list keeps its own role (its items must stay in a list); other boxes become a named region.
        var isList = el.tagName === "OL" || el.tagName === "UL";
        if (!isList && !el.hasAttribute("role")) { el.setAttribute("role", "region"); el.setAttribute("data-scroll-role", ""); }
        if (!el.hasAttribute("aria-label") && !el.hasAttribute("aria-labelledby")) {
          el.setAttribute("aria-label", named(el));
          el.setAttribute("data-scroll-label", "");
        }
      } else if (!scrolls(el) && added) {
        el.removeAttribute("tabindex");
        el.removeAttribute("data-scroll-focus");
        if (el.hasAttribute("data-scroll-role")) { el.removeAttribute("role"); el.removeAttribute("data-scroll-role"); }
        if (el.hasAttribute("data-scroll-label")) { el.removeAttribute("aria-label"); el.removeAttribute("data-scroll-label"); }
      }
    });
  }
  reachable();
  window.addEventListener("resize", function () { window.requestAnimationFrame(reachable); });
  window.addEventListener("load", reachable);  // charts and fonts change sizes once loaded
}());

/* what was typed survives a session that ended mid-form. A form is remembered (in this tab's
   sessionStorage, never a password or a hidden field) as it is sent. If the next page is the
   sign-in page, the session had ended and the server saw nothing: after signing in, the same
   form gets the words back, with a notice. Any other next page means the server had it: forgotten. */
(function () {
  "use strict";
  var KEY = "reminders.unsentForm";
  var KEEP_MS = 2 * 60 * 60 * 1000;
  var TEXTUAL = /^(text|email|tel|number|date|time|search|url|datetime-local)$/;

  function read() {
    try { return JSON.parse(window.sessionStorage.getItem(KEY) || "null"); } catch (e) { return null; }
  }
  function write(value) {
    try {
      if (value) { window.sessionStorage.setItem(KEY, JSON.stringify(value)); } else { window.sessionStorage.removeItem(KEY); }
    } catch (e) { /* private mode or full: nothing kept */ }
  }
  function kept(field) {
    if (!field.name || field.disabled || field.name === "csrf_token") { return false; }
    if (field.tagName === "TEXTAREA" || field.tagName === "SELECT") { return true; }
    return field.tagName === "INPUT" && (TEXTUAL.test(field.type) || field.type === "radio" || field.type === "checkbox");
  }
  function snapshot(form) {
    var values = [], typed = false;
    Array.prototype.forEach.call(form.elements, function (field) {
      if (!kept(field)) { return; }
      if ((field.type === "radio" || field.type === "checkbox") && !field.checked) { return; }
      values.push([field.name, field.value]);
      if (field.tagName !== "SELECT" && field.type !== "radio" && field.type !== "checkbox" && field.value.trim()) {
        typed = true;
      }
    });
    return typed ? values : null;
  }
  function putBack(form, values) {
    var first = null;
    values.forEach(function (pair) {
      Array.prototype.forEach.call(form.elements, function (field) {
        if (field.name !== pair[0] || !kept(field)) { return; }
        if (field.type === "radio" || field.type === "checkbox") {
          field.checked = field.value === pair[1];
        } else {
          field.value = pair[1];
          if (!first && pair[1]) { first = field; }
        }
      });
    });
    var note = document.createElement("p");
    note.className = "notice notice-warn unsent-restored";
    note.setAttribute("role", "status");
    note.textContent = "Your session had ended, so this was not sent. What you typed is back in the form: check it, then send it again.";
    form.parentNode.insertBefore(note, form);
    if (first) { first.focus(); }
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (event.defaultPrevented || (form.method || "").toLowerCase() !== "post" || form.querySelector("input[type=password]")) {
      return;
    }
    var values = snapshot(form);
    write(values ? {action: form.action, values: values, at: Date.now(), state: "sent"} : null);
  });

  var draft = read();
  if (!draft || Date.now() - draft.at > KEEP_MS) { write(null); return; }
  var signInPage = document.body.classList.contains("login-page");
  if (draft.state === "sent") {
    if (signInPage) { draft.state = "interrupted"; write(draft); } else { write(null); }
    return;
  }
  if (signInPage) { return; }
  var form = Array.prototype.find.call(document.forms, function (f) { return f.action === draft.action; });
  if (form) { putBack(form, draft.values); write(null); }
}());
