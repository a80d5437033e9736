/* logistique — the scans' answer (colour, text, sound, vibration) and the offline queue of the scan pages.

   Every scan is first written to IndexedDB (database « logistique-scans », one record per scan with its own
   Idempotency-Key), then sent, one at a time and in scanning order, by fetch. A record leaves IndexedDB only
   when the server has answered it with JSON: a lost network, a reload, a locked phone or a closed tab keep it,
   and it is sent again — with the same key, so the server answers what it answered the first time and applies
   nothing twice. Used by scan.js; exposes window.logistiqueScan. No inline code: works under a strict CSP. */
(function () {
  "use strict";

  var OUTCOMES = {
    picked: { css: "ok", title: "✓ Enregistré", sr: "Enregistré", vibrate: [70] },
    already: { css: "dup", title: "= Déjà fait", sr: "Déjà fait", vibrate: [30] },
    refused: { css: "ko", title: "✗ Refusé", sr: "Refusé", vibrate: [220, 90, 220] },
    error: { css: "ko", title: "✗ Non enregistré", sr: "Non enregistré", vibrate: [220, 90, 220] },
    queued: { css: "wait", title: "… En attente", sr: "En attente", vibrate: [20, 60, 20] },
  };

  /* ------------------------------------------------------------------ sound */

  // The audio context is made on the first key press or touch (browsers allow audio after a gesture).
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
    var osc = audio.createOscillator();
    var gain = audio.createGain();
    var at = audio.currentTime + start;
    osc.type = type;
    osc.frequency.value = frequency;
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(volume, at + 0.01);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + duration);
    osc.connect(gain);
    gain.connect(audio.destination);
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
        } else if (outcome === "queued") {
          tone(520, 0, 0.07, "triangle", 0.15); // two soft low notes: kept, not yet sent
          tone(440, 0.1, 0.07, "triangle", 0.15);
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
        navigator.vibrate((OUTCOMES[outcome] || OUTCOMES.error).vibrate);
      } catch (e) {
        /* ignored */
      }
    }
  }

  /* ------------------------------------------------------------------ the answer box */

  function Feedback(element) {
    this.element = element;
    this.answers = 0;
  }

  Feedback.prototype.show = function (outcome, message, serial) {
    var el = this.element;
    var o = OUTCOMES[outcome] || OUTCOMES.error;
    this.answers += 1;
    el.className = "scan-feedback";
    void el.offsetWidth; // restart the alarm animation on a second refusal in a row
    el.className = "scan-feedback " + o.css;
    el.setAttribute("data-outcome", outcome);
    el.setAttribute("data-serial", serial || "");
    el.setAttribute("data-answers", String(this.answers));
    el.textContent = "";
    var hidden = document.createElement("span");
    hidden.className = "visually-hidden";
    hidden.textContent = o.sr + "\u00a0: ";
    var title = document.createElement("span");
    title.className = "scan-title";
    title.setAttribute("aria-hidden", "true");
    title.textContent = o.title;
    var detail = document.createElement("span");
    detail.className = "detail";
    detail.textContent = message;
    el.appendChild(hidden);
    el.appendChild(title);
    el.appendChild(detail);
    signal(outcome);
  };

  /* ------------------------------------------------------------------ IndexedDB, by hand (it is small) */

  var DB_NAME = "logistique-scans";
  var STORE = "scans";
  var dbPromise = null;

  function openDb() {
    if (dbPromise) return dbPromise;
    dbPromise = new Promise(function (resolve, reject) {
      if (!window.indexedDB) {
        reject(new Error("IndexedDB absent"));
        return;
      }
      var request = window.indexedDB.open(DB_NAME, 1);
      request.onupgradeneeded = function () {
        var store = request.result.createObjectStore(STORE, { keyPath: "id", autoIncrement: true });
        store.createIndex("scope", "scope");
      };
      request.onsuccess = function () {
        resolve(request.result);
      };
      request.onerror = function () {
        reject(request.error);
      };
    });
    return dbPromise;
  }

  function tx(mode, work) {
    return openDb().then(function (db) {
      return new Promise(function (resolve, reject) {
        var t = db.transaction(STORE, mode);
        var result;
        t.oncomplete = function () {
          resolve(result);
        };
        t.onerror = t.onabort = function () {
          reject(t.error);
        };
        work(t.objectStore(STORE), function (value) {
          result = value;
        });
      });
    });
  }

  function put(record) {
    return tx("readwrite", function (store, done) {
      var request = store.add(record);
      request.onsuccess = function () {
        done(request.result);
      };
    });
  }

  function remove(id) {
    return tx("readwrite", function (store) {
      store.delete(id);
    });
  }

  function list(scope) {
    return tx("readonly", function (store, done) {
      var request = store.index("scope").getAll(scope);
      request.onsuccess = function () {
        done(
          request.result.sort(function (a, b) {
            return a.id - b.id;
          })
        );
      };
    });
  }

  function newKey() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes); // randomUUID needs a secure context; this does not
    return Array.prototype.map
      .call(bytes, function (b) {
        return (b + 256).toString(16).slice(1);
      })
      .join("");
  }

  /* ------------------------------------------------------------------ the queue */

  var RETRY_MS = 5000;

  /* options: scope (string: one queue per page and object), url (where to POST), fields (a function giving the
     extra form fields of a scan), csrf (the page's hidden csrf_token input), and the callbacks
     onQueued(record), onAnswer(record, data, status), onCount(pending, state) where state is
     "online", "offline", "sending" or "login". */
  function ScanQueue(options) {
    this.options = options;
    this.pending = [];
    this.sending = false;
    this.state = navigator.onLine === false ? "offline" : "online";
    this.timer = null;
    this.memory = false; // IndexedDB refused (private mode of some browsers): keep the queue in memory
    var self = this;
    window.addEventListener("online", function () {
      self.setState("online");
      self.pump();
    });
    window.addEventListener("offline", function () {
      self.setState("offline");
    });
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) self.pump(); // the phone was unlocked
    });
    window.addEventListener("pageshow", function () {
      self.pump();
    });
  }

  ScanQueue.prototype.start = function () {
    var self = this;
    return list(this.options.scope)
      .then(
        function (records) {
          // scans made while the stored ones were being read are already in IndexedDB: keep one copy of each
          var ids = records.map(function (r) { return r.id; });
          self.pending = records.concat(
            self.pending.filter(function (r) { return ids.indexOf(r.id) === -1; })
          );
        },
        function () {
          self.memory = true;
        }
      )
      .then(function () {
        // scans kept from before a reload will be answered aloud if the browser allows sound without a
        // touch (it does once the site is used); else the first touch or key press turns it on
        if (self.pending.length) ensureAudio();
        self.pending.forEach(function (record) {
          self.options.onQueued(record, true);
        });
        self.count();
        self.pump();
      });
  };

  ScanQueue.prototype.setState = function (state) {
    this.state = state;
    this.count();
  };

  ScanQueue.prototype.count = function () {
    this.options.onCount(this.pending.length, this.state);
  };

  ScanQueue.prototype.add = function (code) {
    var self = this;
    var record = {
      scope: this.options.scope,
      url: this.options.url,
      code: code,
      codeName: this.options.codeName || "code",
      fields: this.options.fields ? this.options.fields() : {},
      key: newKey(),
      at: Date.now(),
    };
    var stored = this.memory ? Promise.resolve(null) : put(record).catch(function () { return null; });
    return stored.then(function (id) {
      record.id = id === null ? "m" + record.at + Math.random() : id;
      self.pending.push(record);
      self.options.onQueued(record, false);
      self.count();
      self.pump();
      return record;
    });
  };

  ScanQueue.prototype.later = function () {
    var self = this;
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(function () {
      self.pump();
    }, RETRY_MS);
  };

  ScanQueue.prototype.pump = function () {
    var self = this;
    if (this.sending || !this.pending.length) return;
    if (navigator.onLine === false) {
      this.setState("offline");
      return;
    }
    var record = this.pending[0];
    this.sending = true;
    this.setState("sending");
    this.send(record, false).then(
      function (answer) {
        self.sending = false;
        if (answer === null) return; // kept: sent again later
        self.pending.shift();
        var done = typeof record.id === "number" ? remove(record.id) : Promise.resolve();
        return done
          .catch(function () {})
          .then(function () {
            self.setState("online");
            self.options.onAnswer(record, answer.data, answer.status);
            self.pump();
          });
      },
      function () {
        self.sending = false;
        self.later();
      }
    );
  };

  // → {data, status} when the server answered with JSON (the record is done), or null (kept for later).
  ScanQueue.prototype.send = function (record, tokenRefreshed) {
    var self = this;
    var body = new URLSearchParams(); // not FormData: the same body byte for byte when sent again
    Object.keys(record.fields).forEach(function (name) {
      body.append(name, record.fields[name]);
    });
    body.append(record.codeName || "code", record.code);
    var token = this.options.csrf ? this.options.csrf.value : "";
    return fetch(record.url, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "application/json", "X-CSRFToken": token, "Idempotency-Key": record.key },
    }).then(
      function (response) {
        var type = response.headers.get("Content-Type") || "";
        if (type.indexOf("application/json") !== -1) {
          return response.json().then(function (data) {
            return { data: data, status: response.status };
          });
        }
        if (response.redirected || response.status === 401) {
          self.setState("login"); // logged out: the scans stay on the phone until the volunteer logs in again
          self.later();
          return null;
        }
        if (response.status === 400 && !tokenRefreshed) {
          // a page opened from the phone's cache carries an old CSRF token: take a fresh one, try again
          return self.refreshToken().then(function (ok) {
            return ok ? self.send(record, true) : null;
          });
        }
        self.setState("online");
        if (response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429) {
          // refused for good (no right, gone): said once, not sent again and again
          return {
            data: { outcome: "error", message: record.code + " refusé par le serveur (erreur " + response.status + ")." },
            status: response.status,
          };
        }
        self.later(); // a server error, or too busy: try again in a moment
        return null;
      },
      function () {
        self.setState("offline"); // no network: kept, sent when it is back
        self.later();
        return null;
      }
    );
  };

  ScanQueue.prototype.refreshToken = function () {
    var field = this.options.csrf;
    if (!field) return Promise.resolve(false);
    return fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.redirected || !response.ok) return false;
        return response.text().then(function (html) {
          var page = new DOMParser().parseFromString(html, "text/html");
          var fresh = page.querySelector('input[name="csrf_token"]');
          if (!fresh || !fresh.value) return false;
          document.querySelectorAll('input[name="csrf_token"]').forEach(function (input) {
            input.value = fresh.value;
          });
          return true;
        });
      })
      .catch(function () {
        return false;
      });
  };

  window.logistiqueScan = {
    OUTCOMES: OUTCOMES,
    Feedback: Feedback,
    ScanQueue: ScanQueue,
    ensureAudio: ensureAudio,
    signal: signal,
  };
})();
