/* logistique — slip pages: preparation by scanning (templates/slips/prepare.html) and the reception helpers
   (templates/slips/reception.html). Progressive enhancement: without this file every page still works with
   plain forms (one POST per scan, the answer as a flash message).

   Preparation: the scan form is sent with fetch (Accept: application/json, CSRF token in the form data and the
   X-CSRFToken header); the answer shows at once in the live region, with a sound (WebAudio) and a vibration,
   and updates the progress and the checklist. Scans are queued and sent one at a time: a handheld scanner
   typing codes faster than the network answers never loses one. The camera (getUserMedia) decodes QR codes
   and Code 128 with BarcodeDetector where it exists (Android, macOS), else QR codes with the vendored jsQR
   (static/vendor/jsqr, loaded only when the camera starts). */
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

  /* ------------------------------------------------------------------ preparation */

  var root = document.querySelector("[data-prepare]");
  var form = root && root.querySelector("form[data-scan-form]");
  if (!form || !window.fetch || !window.FormData || !window.Promise) return;

  var input = form.querySelector('input[name="code"]');
  var tokenField = form.querySelector('input[name="csrf_token"]');
  var feedback = root.querySelector("[data-scan-feedback]");
  var progress = root.querySelector("[data-progress]");
  var meter = root.querySelector("[data-progress-meter]");
  var shipForm = root.querySelector("[data-ship-form]");
  var checklist = root.querySelector("[data-checklist]");

  var OUTCOMES = {
    picked: { css: "ok", title: "✓ Préparé", sr: "Préparé", vibrate: [70] },
    already: { css: "dup", title: "= Déjà préparé", sr: "Déjà préparé", vibrate: [30] },
    refused: { css: "ko", title: "✗ Refusé", sr: "Refusé", vibrate: [220, 90, 220] },
    error: { css: "ko", title: "✗ Non enregistré", sr: "Non enregistré", vibrate: [220, 90, 220] },
  };

  /* Sound: the context is made on the first key press or touch (browsers allow audio after a gesture). */
  var audio = null;
  function ensureAudio() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return null;
    if (!audio) {
      try {
        audio = new Context();
      } catch (e) {
        return null;
      }
    }
    if (audio.state === "suspended" && audio.resume) audio.resume().catch(function () {});
    return audio;
  }
  ["keydown", "pointerdown"].forEach(function (type) {
    document.addEventListener(type, ensureAudio, { once: true, capture: true });
  });

  function tone(frequency, start, duration, type, volume) {
    var ctx = audio;
    var osc = ctx.createOscillator();
    var gain = ctx.createGain();
    var at = ctx.currentTime + start;
    osc.type = type;
    osc.frequency.value = frequency;
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(volume, at + 0.01);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + duration);
    osc.connect(gain);
    gain.connect(ctx.destination);
    osc.start(at);
    osc.stop(at + duration + 0.02);
  }

  function signal(outcome) {
    try {
      if (audio && audio.state === "running") {
        if (outcome === "picked") {
          tone(1760, 0, 0.12, "sine", 0.35); // short high beep
        } else if (outcome === "already") {
          tone(700, 0, 0.06, "sine", 0.12); // soft blip
        } else {
          tone(150, 0, 0.22, "square", 0.3); // double low buzz
          tone(150, 0.3, 0.22, "square", 0.3);
        }
      }
    } catch (e) {
      /* no sound: the colour and the text still say it */
    }
    if (navigator.vibrate) {
      try {
        navigator.vibrate(OUTCOMES[outcome].vibrate);
      } catch (e) {
        /* ignored */
      }
    }
  }

  /* Answer display */
  var answers = 0;
  function show(outcome, message, serial) {
    var o = OUTCOMES[outcome] || OUTCOMES.error;
    answers += 1;
    feedback.className = "scan-feedback";
    void feedback.offsetWidth; // restart the alarm animation on a second refusal in a row
    feedback.className = "scan-feedback " + o.css;
    feedback.setAttribute("data-outcome", outcome);
    feedback.setAttribute("data-serial", serial || "");
    feedback.setAttribute("data-answers", String(answers));
    feedback.textContent = "";
    var title = document.createElement("span");
    title.className = "scan-title";
    title.setAttribute("aria-hidden", "true");
    title.textContent = o.title;
    var hidden = document.createElement("span");
    hidden.className = "visually-hidden";
    hidden.textContent = o.sr + "\u00a0: ";
    var detail = document.createElement("span");
    detail.className = "detail";
    detail.textContent = message;
    feedback.appendChild(hidden);
    feedback.appendChild(title);
    feedback.appendChild(detail);
    signal(outcome);
  }

  function setProgress(picked, total) {
    if (typeof picked !== "number" || typeof total !== "number") return;
    progress.setAttribute("data-progress", picked + "/" + total);
    progress.setAttribute("data-picked", String(picked));
    progress.setAttribute("data-total", String(total));
    progress.querySelector("[data-progress-picked]").textContent = String(picked);
    progress.querySelector("[data-progress-total]").textContent = String(total);
    if (meter) {
      meter.max = total || 1;
      meter.value = picked;
    }
    var complete = total > 0 && picked === total;
    progress.classList.toggle("is-complete", complete);
    if (shipForm && complete && shipForm.hidden) {
      shipForm.hidden = false;
      stopCamera("Tout est préparé\u00a0: caméra arrêtée.");
    }
  }

  function markPicked(serial) {
    if (!checklist || !serial) return;
    var lines = checklist.querySelectorAll("[data-line]");
    for (var i = 0; i < lines.length; i += 1) {
      var line = lines[i];
      if (line.getAttribute("data-serial") === serial || line.getAttribute("data-asset-tag") === serial) {
        line.classList.add("is-picked");
        line.setAttribute("data-picked", "true");
        line.querySelector(".pick-mark").textContent = "✓";
        line.querySelector("[data-pick-state]").textContent = "Préparé";
      }
    }
  }

  /* The queue: one request at a time, in scanning order. */
  var queue = [];
  var sending = false;

  function enqueue(code) {
    queue.push(code);
    root.setAttribute("data-queue", String(queue.length + (sending ? 1 : 0)));
    if (!sending) next();
  }

  function next() {
    var code = queue.shift();
    if (code === undefined) {
      sending = false;
      root.setAttribute("data-queue", "0");
      return;
    }
    sending = true;
    send(code).then(next, next);
  }

  function send(code) {
    var token = tokenField ? tokenField.value : "";
    var body = new FormData();
    body.append("csrf_token", token);
    body.append("code", code);
    return fetch(form.action, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": token },
    })
      .then(function (response) {
        var type = response.headers.get("Content-Type") || "";
        if (type.indexOf("application/json") === -1) {
          var why =
            response.redirected || response.status === 401
              ? "Votre session a expiré\u00a0: rechargez la page et reconnectez-vous."
              : "La page a expiré (erreur " + response.status + ")\u00a0: rechargez-la.";
          show("error", code + " n’a PAS été enregistré. " + why, code);
          return;
        }
        return response.json().then(function (data) {
          var outcome = OUTCOMES[data.outcome] ? data.outcome : "error";
          show(outcome, data.message || "", data.serial || code);
          setProgress(data.picked, data.total);
          if (outcome === "picked" || outcome === "already") markPicked(data.serial);
        });
      })
      .catch(function () {
        show("error", code + " n’a PAS été enregistré (réseau indisponible)\u00a0: scannez-le à nouveau.", code);
      });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault(); // before app.js's double-submission guard, which then leaves this form alone
    var code = input.value.trim();
    input.value = "";
    input.focus();
    if (!code) {
      show("refused", "Scannez une étiquette.", "");
      return;
    }
    enqueue(code);
  });

  /* ------------------------------------------------------------------ camera */

  var camera = root.querySelector("[data-camera]");
  var stream = null;
  var running = false;
  var lastText = "";
  var lastSeen = 0;
  var SAME_CODE_MS = 2000;

  function cameraStatus(text) {
    var el = camera && camera.querySelector("[data-camera-status]");
    if (el) el.textContent = text;
  }

  function loadJsQR() {
    if (window.jsQR) return Promise.resolve(window.jsQR);
    return new Promise(function (resolve, reject) {
      var script = document.createElement("script");
      script.src = camera.getAttribute("data-jsqr-src");
      script.onload = function () {
        if (window.jsQR) resolve(window.jsQR);
        else reject(new Error("jsQR absent"));
      };
      script.onerror = function () {
        reject(new Error("jsQR introuvable"));
      };
      document.head.appendChild(script);
    });
  }

  // A decoder is a function(video) → Promise of the decoded text, or null.
  function makeDecoder() {
    if ("BarcodeDetector" in window) {
      var wanted = ["qr_code", "code_128"];
      var supported = window.BarcodeDetector.getSupportedFormats
        ? window.BarcodeDetector.getSupportedFormats()
        : Promise.resolve(wanted);
      return supported
        .then(function (formats) {
          var usable = wanted.filter(function (f) {
            return formats.indexOf(f) !== -1;
          });
          if (usable.indexOf("qr_code") === -1) throw new Error("no qr_code");
          var detector = new window.BarcodeDetector({ formats: usable });
          camera.setAttribute("data-decoder", "BarcodeDetector");
          return function (video) {
            return detector.detect(video).then(function (codes) {
              return codes.length ? codes[0].rawValue : null;
            });
          };
        })
        .catch(jsQRDecoder);
    }
    return jsQRDecoder();
  }

  function jsQRDecoder() {
    return loadJsQR().then(function (jsQR) {
      var canvas = document.createElement("canvas");
      var ctx = canvas.getContext("2d", { willReadFrequently: true });
      camera.setAttribute("data-decoder", "jsQR");
      return function (video) {
        var w = video.videoWidth;
        var h = video.videoHeight;
        if (!w || !h) return Promise.resolve(null);
        var scale = Math.min(1, 800 / Math.max(w, h));
        canvas.width = Math.round(w * scale);
        canvas.height = Math.round(h * scale);
        ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
        var image = ctx.getImageData(0, 0, canvas.width, canvas.height);
        var code = jsQR(image.data, image.width, image.height, { inversionAttempts: "dontInvert" });
        return Promise.resolve(code && code.data ? code.data : null);
      };
    });
  }

  function onText(text) {
    text = (text || "").trim();
    if (!text) return;
    var now = Date.now();
    var repeated = text === lastText && now - lastSeen < SAME_CODE_MS;
    lastText = text;
    lastSeen = now; // a label held in front of the camera stays « seen »: it is sent once
    if (repeated) return;
    var view = camera.querySelector("[data-camera-view]");
    view.classList.remove("is-hit");
    void view.offsetWidth;
    view.classList.add("is-hit");
    enqueue(text);
  }

  function startCamera() {
    var state = camera.getAttribute("data-camera-state");
    if (state === "starting" || state === "running") return;
    var video = camera.querySelector("[data-camera-video]");
    ensureAudio();
    cameraStatus("Ouverture de la caméra…");
    camera.setAttribute("data-camera-state", "starting");
    navigator.mediaDevices
      .getUserMedia({ audio: false, video: { facingMode: { ideal: "environment" } } })
      .then(function (s) {
        stream = s;
        video.srcObject = s;
        video.muted = true;
        video.setAttribute("playsinline", "");
        return video.play();
      })
      .then(makeDecoder)
      .then(function (decode) {
        if (!stream) return; // stopped meanwhile
        running = true;
        camera.querySelector("[data-camera-start]").hidden = true;
        camera.querySelector("[data-camera-view]").hidden = false;
        camera.setAttribute("data-camera-state", "running");
        cameraStatus("Visez l’étiquette de l’équipement (QR code).");
        var loop = function () {
          if (!running) return;
          var work = video.readyState >= 2 ? decode(video) : Promise.resolve(null);
          work
            .then(onText, function () {})
            .then(function () {
              if (running) window.setTimeout(loop, 120);
            });
        };
        loop();
      })
      .catch(function (error) {
        stopCamera();
        camera.setAttribute("data-camera-state", "error");
        var name = error && error.name;
        cameraStatus(
          name === "NotAllowedError"
            ? "Accès à la caméra refusé\u00a0: autorisez-le dans le navigateur, ou utilisez la douchette."
            : name === "NotFoundError"
              ? "Aucune caméra trouvée sur cet appareil."
              : "Caméra indisponible (" + (error && error.message ? error.message : name || "erreur") + ")."
        );
      });
  }

  function stopCamera(message) {
    if (!camera) return;
    running = false;
    if (stream) {
      stream.getTracks().forEach(function (track) {
        track.stop();
      });
      stream = null;
    }
    var video = camera.querySelector("[data-camera-video]");
    if (video) video.srcObject = null;
    if (camera.getAttribute("data-camera-state") === "running") {
      camera.setAttribute("data-camera-state", "stopped");
      if (message) cameraStatus(message);
      else cameraStatus("");
    }
    camera.querySelector("[data-camera-start]").hidden = false;
    camera.querySelector("[data-camera-view]").hidden = true;
  }

  if (camera && navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
    camera.hidden = false;
    camera.querySelector("[data-camera-start]").addEventListener("click", startCamera);
    camera.querySelector("[data-camera-stop]").addEventListener("click", function () {
      stopCamera("Caméra arrêtée.");
    });
    document.addEventListener("visibilitychange", function () {
      if (document.hidden && running) stopCamera("Caméra arrêtée (page en arrière-plan).");
    });
    window.addEventListener("pagehide", function () {
      stopCamera();
    });
  }
})();
