/* logistique — the phone camera as a barcode reader, on every scan page (templates/_scanning.html).

   Decoder: the browser's own BarcodeDetector when it reads the formats we need (Android, macOS), else the
   vendored polyfill « barcode-detector » (ZXing compiled to WebAssembly: iPhone, Firefox, Windows, Linux),
   whose zxing_reader.wasm is served by the app itself (static/vendor/barcode-detector), never by a CDN.
   Formats: QR code, Code 128, DataMatrix, EAN-13. Scanning is continuous; the same code seen again within
   two seconds is sent once. A torch button appears when the camera offers one; the screen is kept awake
   (Screen Wake Lock) while the camera runs. Everything is feature-detected: where a feature is missing the
   page says so or simply does without. Exposes window.logistiqueCamera(container, onCode). */
(function () {
  "use strict";

  var FORMATS = ["qr_code", "code_128", "data_matrix", "ean_13"];
  var SAME_CODE_MS = 2000;
  var FRAME_MS = 150;

  function loadScript(src) {
    return new Promise(function (resolve, reject) {
      var script = document.createElement("script");
      script.src = src;
      script.onload = resolve;
      script.onerror = function () {
        reject(new Error("script introuvable : " + src));
      };
      document.head.appendChild(script);
    });
  }

  var polyfill = null;
  function polyfillDetector(container) {
    if (!polyfill) {
      var wasm = container.getAttribute("data-zxing-wasm");
      polyfill = (window.BarcodeDetectionAPI ? Promise.resolve() : loadScript(container.getAttribute("data-polyfill-src")))
        .then(function () {
          var api = window.BarcodeDetectionAPI;
          // the .wasm comes from this server, not from the CDN the library would use by default
          api.setZXingModuleOverrides({
            locateFile: function (path, prefix) {
              return path.slice(-5) === ".wasm" ? wasm : prefix + path;
            },
          });
          return api.prepareZXingModule({ fireImmediately: true }).then(function () {
            return api.BarcodeDetector;
          });
        });
    }
    return polyfill.then(function (Detector) {
      container.setAttribute("data-decoder", "polyfill");
      return new Detector({ formats: FORMATS });
    });
  }

  function makeDetector(container) {
    var Native = window.BarcodeDetector;
    if (Native && Native.getSupportedFormats) {
      return Native.getSupportedFormats()
        .then(function (formats) {
          var missing = FORMATS.filter(function (f) {
            return formats.indexOf(f) === -1;
          });
          if (missing.length) throw new Error("formats absents : " + missing.join(", "));
          container.setAttribute("data-decoder", "native");
          return new Native({ formats: FORMATS });
        })
        .catch(function () {
          return polyfillDetector(container);
        });
    }
    return polyfillDetector(container);
  }

  function explain(error) {
    var name = error && error.name;
    if (name === "NotAllowedError" || name === "SecurityError") {
      return "Accès à la caméra refusé\u00a0: autorisez la caméra pour ce site dans les réglages du navigateur, ou utilisez la douchette ou la saisie.";
    }
    if (name === "NotFoundError" || name === "OverconstrainedError") return "Aucune caméra trouvée sur cet appareil.";
    if (name === "NotReadableError") return "La caméra est déjà utilisée par une autre application\u00a0: fermez-la, puis réessayez.";
    return "Caméra indisponible (" + ((error && (error.message || name)) || "erreur") + ").";
  }

  function Camera(container, onCode) {
    this.container = container;
    this.onCode = onCode;
    this.stream = null;
    this.running = false;
    this.lock = null;
    this.torchOn = false;
    this.lastText = "";
    this.lastSeen = 0;
    this.video = container.querySelector("[data-camera-video]");
    this.startButton = container.querySelector("[data-camera-start]");
    this.torchButton = container.querySelector("[data-camera-torch]");
    this.view = container.querySelector("[data-camera-view]");
    var self = this;

    container.hidden = false;
    if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      // a camera needs HTTPS (or localhost): say it, keep the handheld scanner and the keyboard
      this.startButton.hidden = true;
      container.setAttribute("data-camera-state", "insecure");
      this.status(
        "Caméra indisponible\u00a0: cette page n’est pas servie en HTTPS (adresse en « https:// »), " +
          "condition du navigateur pour ouvrir la caméra. Utilisez la douchette ou la saisie au clavier."
      );
      return;
    }
    this.startButton.addEventListener("click", function () {
      self.start();
    });
    container.querySelector("[data-camera-stop]").addEventListener("click", function () {
      self.stop("Caméra arrêtée.");
    });
    if (this.torchButton) {
      this.torchButton.addEventListener("click", function () {
        self.torch(!self.torchOn);
      });
    }
    document.addEventListener("visibilitychange", function () {
      if (document.hidden && self.running) self.stop("Caméra arrêtée (page en arrière-plan).");
    });
    window.addEventListener("pagehide", function () {
      self.stop();
    });
  }

  Camera.prototype.status = function (text) {
    var el = this.container.querySelector("[data-camera-status]");
    if (el) el.textContent = text;
  };

  Camera.prototype.start = function () {
    var self = this;
    var state = this.container.getAttribute("data-camera-state");
    if (state === "starting" || state === "running") return;
    if (window.logistiqueScan) window.logistiqueScan.ensureAudio();
    this.status("Ouverture de la caméra…");
    this.container.setAttribute("data-camera-state", "starting");
    navigator.mediaDevices
      .getUserMedia({ audio: false, video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 } } })
      .then(function (stream) {
        self.stream = stream;
        self.video.srcObject = stream;
        self.video.muted = true;
        self.video.setAttribute("playsinline", "");
        return self.video.play();
      })
      .then(function () {
        return makeDetector(self.container);
      })
      .then(function (detector) {
        if (!self.stream) return; // stopped meanwhile
        self.running = true;
        self.startButton.hidden = true;
        self.view.hidden = false;
        self.container.setAttribute("data-camera-state", "running");
        self.status("Visez le code-barres ou le QR code de l’étiquette.");
        self.offerTorch();
        self.keepAwake();
        self.loop(detector);
      })
      .catch(function (error) {
        self.stop();
        self.container.setAttribute("data-camera-state", "error");
        self.status(explain(error));
      });
  };

  Camera.prototype.loop = function (detector) {
    var self = this;
    if (!this.running) return;
    var work = this.video.readyState >= 2 ? detector.detect(this.video) : Promise.resolve([]);
    work
      .then(
        function (codes) {
          if (codes && codes.length) self.seen(codes[0].rawValue, codes[0].format);
        },
        function () {}
      )
      .then(function () {
        if (self.running) window.setTimeout(function () { self.loop(detector); }, FRAME_MS);
      });
  };

  Camera.prototype.seen = function (text, format) {
    text = (text || "").trim();
    if (!text) return;
    var now = Date.now();
    var repeated = text === this.lastText && now - this.lastSeen < SAME_CODE_MS;
    this.lastText = text;
    this.lastSeen = now; // a label held in front of the camera stays « seen »: it is sent once
    if (repeated) return;
    this.container.setAttribute("data-last-format", format || "");
    this.view.classList.remove("is-hit");
    void this.view.offsetWidth;
    this.view.classList.add("is-hit");
    this.onCode(text);
  };

  /* Torch: only where the camera track says it has one (many Android phones); elsewhere no button. */
  Camera.prototype.offerTorch = function () {
    var track = this.stream && this.stream.getVideoTracks()[0];
    var capabilities = track && track.getCapabilities ? track.getCapabilities() : {};
    var has = !!(capabilities && capabilities.torch);
    this.container.setAttribute("data-torch", has ? "available" : "unavailable");
    if (this.torchButton) this.torchButton.hidden = !has;
  };

  Camera.prototype.torch = function (on) {
    var self = this;
    var track = this.stream && this.stream.getVideoTracks()[0];
    if (!track || !track.applyConstraints) return;
    track
      .applyConstraints({ advanced: [{ torch: on }] })
      .then(function () {
        self.torchOn = on;
        self.torchButton.setAttribute("aria-pressed", on ? "true" : "false");
        self.torchButton.textContent = on ? "Éteindre la lampe" : "Allumer la lampe";
      })
      .catch(function () {
        self.status("La lampe de cet appareil ne répond pas.");
      });
  };

  /* Screen Wake Lock: the phone does not go to sleep while scanning; released when the camera stops. */
  Camera.prototype.keepAwake = function () {
    var self = this;
    if (!("wakeLock" in navigator) || !navigator.wakeLock || !navigator.wakeLock.request) {
      this.container.setAttribute("data-wake-lock", "unsupported");
      return;
    }
    navigator.wakeLock
      .request("screen")
      .then(function (lock) {
        if (!self.running) {
          lock.release().catch(function () {});
          return;
        }
        self.lock = lock;
        self.container.setAttribute("data-wake-lock", "active");
        lock.addEventListener("release", function () {
          if (self.lock === lock) self.lock = null;
        });
      })
      .catch(function () {
        self.container.setAttribute("data-wake-lock", "refused"); // battery saver, iframe…: not an error
      });
  };

  Camera.prototype.stop = function (message) {
    this.running = false;
    if (this.lock) {
      this.lock.release().catch(function () {});
      this.lock = null;
    }
    if (this.stream) {
      this.stream.getTracks().forEach(function (track) {
        track.stop();
      });
      this.stream = null;
    }
    this.torchOn = false;
    if (this.video) this.video.srcObject = null;
    if (this.container.getAttribute("data-camera-state") === "running") {
      this.container.setAttribute("data-camera-state", "stopped");
      this.status(message || "");
    }
    this.startButton.hidden = false;
    this.view.hidden = true;
    if (this.torchButton) this.torchButton.hidden = true;
  };

  window.logistiqueCamera = function (container, onCode) {
    return new Camera(container, onCode);
  };
})();
