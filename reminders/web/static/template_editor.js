/* The template editor: a live preview of the texts exactly as they are sent, each with its
   own segment meter, and what a save would be refused for. The server renders and counts
   (template_checks.preview); window.smsLength (staff.js) only names the characters that need UCS-2. */
(function () {
  "use strict";

  var editor = document.querySelector(".template-editor");
  if (!editor) { return; }
  var source = document.getElementById("source");
  var errorBox = document.getElementById("template-error");
  var preview = document.getElementById("preview");
  var frame = document.getElementById("preview-frame");
  var meter = document.getElementById("sms-meter");
  var warning = document.getElementById("sms-warning");
  var sendAnyway = document.getElementById("send-anyway-box");
  var form = document.getElementById("template-form");
  var token = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var url = editor.getAttribute("data-preview-url");
  var timer = null;
  var sequence = 0;

  function plural(count, word) { return count + " " + word + (count === 1 ? "" : "s"); }

  function lengthWords(sms) {
    return sms.characters + " characters · " + sms.encoding + " · " + plural(sms.segments, "segment");
  }

  function isWarn(sms) { return sms.segments > 1 || sms.encoding !== "GSM-7"; }

  function showTexts(texts) {
    preview.textContent = "";
    texts.forEach(function (item, index) {
      var li = document.createElement("li");
      li.className = "preview-text";
      var partMeter = document.createElement("div");
      partMeter.className = "meter text-meter" + (isWarn(item.sms) ? " meter-warn" : "");
      partMeter.textContent = "Text " + (index + 1) + " of " + texts.length + " · " + lengthWords(item.sms);
      var bubble = document.createElement("div");
      bubble.className = "preview preview-sms";
      bubble.textContent = item.text;
      li.appendChild(partMeter);
      li.appendChild(bubble);
      preview.appendChild(li);
    });
  }

  function showMeter(data) {
    var texts = data.texts || [];
    if (texts.length > 1) {
      var segments = texts.reduce(function (n, item) { return n + item.sms.segments; }, 0);
      var encodings = texts.map(function (item) { return item.sms.encoding; })
        .filter(function (encoding, index, all) { return all.indexOf(encoding) === index; });
      meter.textContent = texts.length + " texts · " + encodings.join(" and ") + " · " + segments + " segments in all";
    } else if (texts.length === 1) {
      meter.textContent = lengthWords(texts[0].sms);
    } else {
      meter.textContent = "";
    }
    meter.className = "meter" + (texts.some(function (item) { return isWarn(item.sms); }) ? " meter-warn" : "");
    meter.setAttribute("data-server-units", String(data.sms.units));
    var notes = [];
    var offenders = window.smsLength ? window.smsLength(data.text).offenders : [];
    if (data.sms.encoding !== "GSM-7" && offenders.length) {
      notes.push("UCS-2 because of " + offenders.join(" ") + ": each segment holds 70 characters, not 160.");
    }
    if (texts.length > 1) {
      notes.push("Goes as " + texts.length + " texts, one after the other; each is billed per segment.");
    } else if (data.sms.segments > 1) {
      notes.push("Sent as " + data.sms.segments + " segments of up to " + data.sms.per_segment + " and billed per segment.");
    }
    warning.textContent = notes.join(" ");
    warning.hidden = notes.length === 0;
  }

  function showProblem(message) {
    errorBox.textContent = message;
    errorBox.hidden = !message;
    if (message) { source.setAttribute("aria-invalid", "true"); } else { source.removeAttribute("aria-invalid"); }
  }

  // The "Send it anyway as N segments" box stands for one count: gone once the text costs another.
  function keepSendAnyway(refusal) {
    if (!sendAnyway) { return; }
    var same = refusal && String(refusal.segments) === sendAnyway.getAttribute("data-segments");
    sendAnyway.hidden = !same;
    if (!same) { document.getElementById("send-anyway").checked = false; }
  }

  function showResult(data) {
    if (data.ok) {
      editor.classList.remove("is-stale");
      showProblem(data.refusal ? data.refusal.message : "");
      keepSendAnyway(data.refusal);
      if (frame) {
        frame.srcdoc = data.text;
      } else if (data.sms) {  // a text billed in segments
        showTexts(data.texts);
        showMeter(data);
      } else {
        preview.textContent = data.text;
      }
    } else {
      showProblem(data.message || "This template cannot be used.");
      keepSendAnyway(null);
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
  // Typed before this script ran (it is deferred; a slow connection can take a while): preview that.
  if (source.value !== source.defaultValue) { refresh(); }
  // A refused save comes back with the reason: focus goes to it, so it is read first.
  if (form && source.getAttribute("aria-invalid") === "true" && !errorBox.hidden) { errorBox.focus(); }
}());
