/* logistique — small progressive enhancements, no dependencies. Every page works without them. */
(function () {
  "use strict";

  var SCAN_SELECTOR = "input[data-autofocus-scan]";
  var RELEASE_AFTER_MS = 15000; // a form that did not navigate (a download, a lost network) becomes usable again

  /* 1. Confirmation: <form data-confirm="Annuler cette attribution ?"> or <button data-confirm="…">.
        Capture phase, so a refusal also stops the form's own submit handlers. */
  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      var submitter = event.submitter;
      var message =
        (submitter && submitter.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
      if (message && !window.confirm(message)) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true
  );

  /* 2. No double submission of POST forms. Opt out with data-allow-resubmit or a target window. */
  function submitButtons(form) {
    return Array.prototype.filter.call(form.elements, function (el) {
      return el.type === "submit" || el.type === "image";
    });
  }

  function setBusy(form, busy) {
    if (busy) {
      form.setAttribute("aria-busy", "true");
      submitButtons(form).forEach(function (button) {
        if (!button.disabled) {
          button.disabled = true;
          button.setAttribute("data-busy-disabled", "");
        }
      });
    } else {
      form.removeAttribute("aria-busy");
      form.removeAttribute("data-submitting");
      submitButtons(form).forEach(function (button) {
        if (button.hasAttribute("data-busy-disabled")) {
          button.disabled = false;
          button.removeAttribute("data-busy-disabled");
        }
      });
    }
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (event.defaultPrevented || !(form instanceof HTMLFormElement)) return;
    var method = ((event.submitter && event.submitter.getAttribute("formmethod")) || form.method || "get").toLowerCase();
    if (method !== "post" || form.hasAttribute("data-allow-resubmit")) return;
    if (form.target && form.target !== "_self") return;
    if (form.hasAttribute("data-submitting")) {
      event.preventDefault();
      return;
    }
    form.setAttribute("data-submitting", "");
    // Disable on the next tick: the browser has then collected the clicked button's name and value.
    window.setTimeout(function () { setBusy(form, true); }, 0);
    window.setTimeout(function () { setBusy(form, false); }, RELEASE_AFTER_MS);
  });

  // Back/forward cache restores the page as it was left: with its buttons disabled.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll("form[data-submitting], form[aria-busy]").forEach(function (form) {
      setBusy(form, false);
    });
  });

  /* 3. Scan fields (handheld scanners type the code then Enter): keep the focus on them.
        Refocus 100 ms after a blur or a submit, only when nothing else has the focus — a person who
        tabs or taps to another field, button or link keeps it there (no keyboard trap). */
  function nothingFocused() {
    var active = document.activeElement;
    return !active || active === document.body || active === document.documentElement;
  }

  function refocusLater(input, alsoFrom) {
    window.setTimeout(function () {
      if (!document.contains(input) || input.disabled || input.readOnly || document.hidden) return;
      if (nothingFocused() || (alsoFrom && document.activeElement === alsoFrom)) {
        input.focus();
      }
    }, 100);
  }

  document.addEventListener("focusout", function (event) {
    if (event.target.matches && event.target.matches(SCAN_SELECTOR)) refocusLater(event.target);
  });

  document.addEventListener("submit", function (event) {
    var input = event.target.querySelector(SCAN_SELECTOR);
    if (input) refocusLater(input, event.submitter || null);
  });

  document.addEventListener("visibilitychange", function () {
    var input = document.querySelector(SCAN_SELECTOR);
    if (input && !document.hidden) refocusLater(input);
  });

  /* 4. On load: an error summary takes the focus (read first); otherwise the scan field does. */
  function onLoad() {
    var summary = document.querySelector(".error-summary");
    if (summary) {
      summary.focus();
    } else {
      var scan = document.querySelector(SCAN_SELECTOR);
      if (scan && nothingFocused()) scan.focus();
    }
    labelScrollableTables();
  }

  /* 5. Tables wider than the screen: make their wrapper reachable and scrollable with the keyboard. */
  function labelScrollableTables() {
    document.querySelectorAll(".table-wrap").forEach(function (wrap) {
      var scrolls = wrap.scrollWidth > wrap.clientWidth + 1 || wrap.scrollHeight > wrap.clientHeight + 1;
      if (scrolls && !wrap.hasAttribute("tabindex")) {
        var caption = wrap.querySelector("caption");
        wrap.setAttribute("tabindex", "0");
        wrap.setAttribute("data-auto-tabindex", "");
        if (!wrap.hasAttribute("role")) wrap.setAttribute("role", "region");
        if (!wrap.hasAttribute("aria-label") && !wrap.hasAttribute("aria-labelledby")) {
          wrap.setAttribute("aria-label", caption ? caption.textContent.trim() : "Tableau (défilant)");
        }
      } else if (!scrolls && wrap.hasAttribute("data-auto-tabindex")) {
        wrap.removeAttribute("tabindex");
        wrap.removeAttribute("data-auto-tabindex");
      }
    });
  }

  var resizeTimer = null;
  window.addEventListener("resize", function () {
    window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(labelScrollableTables, 200);
  });

  /* 6. The installable app: the service worker (/sw.js) keeps the scan pages and static files for offline use. */
  var worker = document.documentElement.getAttribute("data-sw");
  if (worker && "serviceWorker" in navigator) {
    // Did this page pass through the worker? Asked now, not at "load": a worker that finishes installing while
    // the page loads takes control of it (clients.claim) without having seen it pass.
    var navigation = window.performance && performance.getEntriesByType ? performance.getEntriesByType("navigation")[0] : null;
    var passedThroughWorker =
      navigation && typeof navigation.workerStart === "number" ? navigation.workerStart > 0 : !!navigator.serviceWorker.controller;
    window.addEventListener("load", function () {
      navigator.serviceWorker
        .register(worker, { scope: "/" })
        .then(function () {
          return navigator.serviceWorker.ready;
        })
        .then(function (registration) {
          // first visit: this page did not pass through the worker; it keeps it if the server allows it. Only a
          // page the server marks is fetched again: the login page, fetched again by the worker while its form
          // is being sent, could answer after the login with the cookie of before and log the user out.
          var keepable = document.documentElement.hasAttribute("data-keep-offline");
          if (keepable && !passedThroughWorker && registration.active) {
            registration.active.postMessage({ type: "keep-page", url: window.location.href });
          }
        })
        .catch(function () {
          /* not over HTTPS, or refused: the pages still work online */
        });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", onLoad);
  } else {
    onLoad();
  }
})();
