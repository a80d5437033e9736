/* logistique — the scan pages: preparation of a slip (warehouse), stock reception (warehouse), assignment
   from a pupil's page (coordinator), reception of a parcel device by device (coordinator), and the end of loan
   (a family's return, the warehouse's check of a return slip). Each page has a root element
   [data-scan-page="prepare|stock|assign|reception|returns"] holding a form [data-scan-form] (handheld
   scanner: it types the code and presses Enter) and the camera block of templates/_scanning.html.

   Progressive enhancement: without JavaScript every page still works with plain forms. With it, each scan
   goes through the offline queue of scan-queue.js (kept on the phone, its own Idempotency-Key, sent in order)
   and its answer shows at once in the live region, with a sound and a vibration; the camera (camera.js) feeds
   the same queue. Needs scan-queue.js and camera.js loaded before it. */
(function () {
  "use strict";

  /* ------------------------------------------------------------------ reception helpers */

  // <button data-check-all="recu" hidden>: checks every enabled radio of that value in its form.
  document.querySelectorAll("button[data-check-all]").forEach(function (button) {
    var form = button.closest("form") || document;
    button.hidden = false;
    button.addEventListener("click", function () {
      var value = button.getAttribute("data-check-all");
      form.querySelectorAll('input[type="radio"]').forEach(function (radio) {
        if (radio.value === value && !radio.disabled && !radio.checked) {
          radio.checked = true;
          radio.dispatchEvent(new Event("change", { bubbles: true }));
        }
      });
    });
  });

  // <fieldset data-reception-line>: a comment becomes required (and says so) for « manquant » and « endommagé ».
  document.querySelectorAll("[data-reception-line]").forEach(function (line) {
    var comment = line.querySelector("textarea");
    if (!comment) return;
    function update() {
      var checked = line.querySelector('input[type="radio"]:checked');
      var needed = !!checked && checked.value !== "recu";
      comment.required = needed;
      line.classList.toggle("needs-comment", needed);
    }
    line.addEventListener("change", update);
    update();
  });

  /* ------------------------------------------------------------------ scan pages */

  var root = document.querySelector("[data-scan-page]");
  var form = root && root.querySelector("form[data-scan-form]");
  var kit = window.logistiqueScan;
  if (!form || !kit || !window.fetch || !window.Promise || !window.URLSearchParams) return;

  var kind = root.getAttribute("data-scan-page");
  var input = form.querySelector("[data-autofocus-scan]");
  var codeName = input.getAttribute("name");
  var csrf = form.querySelector('input[name="csrf_token"]');
  var feedback = new kit.Feedback(root.querySelector("[data-scan-feedback]"));
  var queueStatus = root.querySelector("[data-queue-status]");
  var log = root.querySelector("[data-scan-log]");
  var okTitle = root.getAttribute("data-ok-title");
  if (okTitle) kit.OUTCOMES.picked.title = "✓ " + okTitle;

  // the other fields of the form go with each scan as they were when it was made (stock: lot, model, état)
  function fields() {
    var values = {};
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el === input || el.name === "csrf_token" || el.type === "submit" || el.disabled) return;
      if ((el.type === "radio" || el.type === "checkbox") && !el.checked) return;
      values[el.name] = el.value;
    });
    return values;
  }

  /* The scans of this visit, newest first, each with its state: en attente, then its real answer. */
  var LOG_SIZE = 30;
  var STATES = {
    queued: "en attente",
    picked: okTitle ? okTitle.toLowerCase() : "enregistré",
    already: "déjà fait",
    refused: "refusé",
    error: "non enregistré",
  };
  function logLine(record) {
    if (!log) return null;
    var line = log.querySelector('[data-key="' + record.key + '"]');
    if (line) return line;
    line = document.createElement("li");
    line.setAttribute("data-key", record.key);
    var code = document.createElement("span");
    code.className = "mono scan-log-code";
    code.textContent = record.code;
    var state = document.createElement("span");
    state.className = "scan-log-state";
    var detail = document.createElement("span");
    detail.className = "scan-log-detail";
    line.appendChild(code);
    line.appendChild(document.createTextNode(" "));
    line.appendChild(state);
    line.appendChild(detail);
    log.insertBefore(line, log.firstChild);
    while (log.children.length > LOG_SIZE) log.removeChild(log.lastChild);
    log.closest("[data-scan-log-box]").hidden = false;
    return line;
  }
  function setLine(record, outcome, message) {
    var line = logLine(record);
    if (!line) return;
    line.setAttribute("data-state", outcome);
    line.className = "scan-log-" + ((kit.OUTCOMES[outcome] || kit.OUTCOMES.error).css);
    line.querySelector(".scan-log-state").textContent = STATES[outcome] || STATES.error;
    // the reason of a refusal; « SN-1 préparé » next to « préparé » would say it twice
    var why = message && (outcome === "refused" || outcome === "error");
    line.querySelector(".scan-log-detail").textContent = why ? " — " + message : "";
    // a refusal, or scans waiting without network: the list opens, so that each one can be checked
    if (outcome === "refused" || outcome === "error" || (outcome === "queued" && netState !== "online")) {
      log.closest("[data-scan-log-box]").open = true;
    }
  }

  var pending = 0;
  var netState = "online";
  function onCount(count, state) {
    pending = count;
    netState = state;
    root.setAttribute("data-queue", String(count));
    root.setAttribute("data-network", state);
    if (queueStatus) {
      var text;
      if (state === "login") {
        text = "Session expirée\u00a0: reconnectez-vous. " + count + " scan(s) en attente restent gardés sur ce téléphone.";
      } else if (count && (state === "offline" || navigator.onLine === false)) {
        text = "Hors ligne\u00a0: " + count + " scan(s) en attente, gardés sur ce téléphone\u00a0; ils partiront au retour du réseau.";
      } else if (count) {
        text = "Envoi\u00a0: " + count + " scan(s) en attente…";
      } else if (state === "offline") {
        text = "Hors ligne\u00a0: vos scans seront gardés sur ce téléphone et envoyés au retour du réseau.";
      } else {
        text = sent ? "Tous les scans sont envoyés et confirmés par le serveur." : "";
      }
      queueStatus.textContent = text;
      queueStatus.className = "queue-status" + (count || state === "offline" || state === "login" ? " is-waiting" : "");
      queueStatus.setAttribute("data-pending", String(count));
      var login = root.querySelector("[data-login-again]");
      if (login) login.hidden = state !== "login";
    }
    if (hooks.count) hooks.count(count, state);
  }

  var sent = 0;
  function onQueued(record, restored) {
    setLine(record, "queued");
    if (restored) return; // the count says it: one answer box per scan made, not per scan reloaded
    if (navigator.onLine === false || netState === "offline" || netState === "login") {
      feedback.show("queued", record.code + " est gardé sur ce téléphone\u00a0: il sera envoyé dès le retour du réseau.", record.code);
    }
  }

  function onAnswer(record, data, status) {
    sent += 1;
    var outcome = data && kit.OUTCOMES[data.outcome] ? data.outcome : data && data.error ? "refused" : "error";
    var message = (data && (data.message || (data.error && data.error.message))) || "Erreur " + status + ".";
    feedback.show(outcome, message, (data && data.serial) || record.code);
    setLine(record, outcome, message);
    if (hooks.answer) hooks.answer(data || {}, outcome);
  }

  /* ------------------------------------------------------------------ what each page does with an answer */

  var hooks = {};

  if (kind === "prepare") {
    var progress = root.querySelector("[data-progress]");
    var meter = root.querySelector("[data-progress-meter]");
    var shipForm = root.querySelector("[data-ship-form]");
    var checklist = root.querySelector("[data-checklist]");
    var shipWait = root.querySelector("[data-ship-wait]");
    var complete = progress && progress.classList.contains("is-complete");

    var updateShip = function () {
      if (!shipForm) return;
      // Expédier only once every scan has left the phone and the server confirmed every line
      var ready = complete && pending === 0;
      shipForm.hidden = !ready;
      if (shipWait) shipWait.hidden = !(complete || pending) || ready;
    };
    hooks.count = updateShip;
    hooks.answer = function (data, outcome) {
      if (typeof data.picked === "number" && typeof data.total === "number") {
        progress.setAttribute("data-progress", data.picked + "/" + data.total);
        progress.setAttribute("data-picked", String(data.picked));
        progress.setAttribute("data-total", String(data.total));
        progress.querySelector("[data-progress-picked]").textContent = String(data.picked);
        progress.querySelector("[data-progress-total]").textContent = String(data.total);
        if (meter) {
          meter.max = data.total || 1;
          meter.value = data.picked;
        }
        complete = data.total > 0 && data.picked === data.total;
        progress.classList.toggle("is-complete", complete);
        var badge = root.querySelector(".prepare-slip .badge");
        if (complete && badge && badge.classList.contains("badge-emis")) {
          badge.className = "badge badge-prepare"; // the server moved the slip to « préparé » with the last pick
          badge.textContent = "Préparé";
        }
        if (complete && camera && pending === 0) camera.stop("Tout est préparé\u00a0: caméra arrêtée.");
      }
      if ((outcome === "picked" || outcome === "already") && checklist && data.serial) {
        checklist.querySelectorAll("[data-line]").forEach(function (line) {
          if (line.getAttribute("data-serial") === data.serial) {
            line.classList.add("is-picked");
            line.setAttribute("data-picked", "true");
            line.querySelector(".pick-mark").textContent = "✓";
            line.querySelector("[data-pick-state]").textContent = "Préparé";
          }
        });
      }
      updateShip();
    };
    if (shipForm) {
      shipForm.addEventListener(
        "submit",
        function (event) {
          if (pending > 0 || navigator.onLine === false) {
            event.preventDefault();
            event.stopImmediatePropagation();
            feedback.show("refused", "Expédition impossible pour l’instant\u00a0: " + (pending ? pending + " scan(s) attendent l’accord du serveur." : "pas de réseau."), "");
          }
        },
        true
      );
    }
  } else if (kind === "reception") {
    hooks.answer = function (data, outcome) {
      if ((outcome !== "picked" && outcome !== "already") || !data.serial) return;
      var line = document.querySelector('[data-reception-line][data-serial="' + data.serial + '"]');
      if (!line) return;
      line.classList.add("is-received");
      line.setAttribute("data-received", "true");
      var radio = line.querySelector('input[type="radio"][value="recu"]');
      if (radio) radio.checked = true;
      var mark = line.querySelector("[data-scan-mark]");
      if (mark) mark.hidden = false;
    };
  } else if (kind === "stock") {
    hooks.answer = function (data) {
      var count = root.querySelector("[data-received-count]");
      if (count && typeof data.received === "number") count.textContent = data.received.toLocaleString("fr-FR");
    };
  } else if (kind === "assign" || kind === "returns") {
    // an assignment changes the pupil's page (list of devices, stock offered): reload it once all is sent
    var changed = false;
    var reloadWhenDone = function () {
      if (changed && pending === 0 && netState === "online") {
        changed = false;
        window.setTimeout(function () { window.location.reload(); }, 1200); // time to read the answer
      }
    };
    hooks.answer = function (data, outcome) {
      if (outcome === "picked") changed = true;
      reloadWhenDone();
    };
    hooks.count = reloadWhenDone;
  }

  /* ------------------------------------------------------------------ wiring */

  var queue = new kit.ScanQueue({
    scope: root.getAttribute("data-scan-scope"),
    url: form.action,
    codeName: codeName,
    fields: fields,
    csrf: csrf,
    onQueued: onQueued,
    onAnswer: onAnswer,
    onCount: onCount,
  });

  function scanned(code) {
    code = (code || "").trim();
    if (!code) {
      feedback.show("refused", "Scannez une étiquette.", "");
      return;
    }
    queue.add(code);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault(); // before app.js's double-submission guard, which then leaves this form alone
    var code = input.value;
    input.value = "";
    input.focus();
    scanned(code);
  });

  var cameraBox = root.querySelector("[data-camera]");
  var camera = cameraBox && window.logistiqueCamera ? window.logistiqueCamera(cameraBox, scanned) : null;

  root.setAttribute("data-scan-ready", "true");
  queue.start();
})();
