/* logistique — service worker (served at /sw.js by views/scanning.py, scope "/").

   Keeps on the phone: the static files (styles, scripts, the barcode decoder and its .wasm, icons), all of
   them at install, in a cache named after their version — a deploy changes the version, the new worker
   replaces the cache; and the scan pages the server marks as such (header {{ header|safe }}: preparation, stock
   reception, parcel reception, never a page with a pupil's name), network first, so that they open without
   network once opened once. Never kept: the API, any other page, any POST and its answer. Logging out
   empties the pages kept. */
"use strict";

const VERSION = "{{ version }}";
const STATIC_CACHE = "logistique-static-" + VERSION;
const PAGES_CACHE = "logistique-pages-" + VERSION;
const PRECACHE = {{ precache|safe }};
const OFFLINE_URL = {{ offline_url|safe }};
const OFFLINE_HEADER = {{ header|safe }};
const LOGOUT_URL = {{ logout_url|safe }};

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(STATIC_CACHE)
      .then((cache) => cache.addAll([...PRECACHE, OFFLINE_URL].map((url) => new Request(url, { cache: "reload", credentials: "omit" }))))
      .then(() => self.skipWaiting())
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) =>
        Promise.all(
          names
            .filter((name) => name.startsWith("logistique-") && name !== STATIC_CACHE && name !== PAGES_CACHE)
            .map((name) => caches.delete(name))
        )
      )
      .then(() => self.clients.claim())
  );
});

function isStatic(url) {
  return url.origin === self.location.origin && url.pathname.startsWith("/static/");
}

async function fromStatic(request) {
  const cached = await caches.match(request, { cacheName: STATIC_CACHE, ignoreSearch: true });
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok) {
    const cache = await caches.open(STATIC_CACHE);
    await cache.put(request, response.clone());
  }
  return response;
}

async function page(request) {
  try {
    const response = await fetch(request);
    const keep =
      response.ok &&
      response.type === "basic" &&
      !response.redirected &&
      response.headers.get(OFFLINE_HEADER) === "page";
    if (keep) {
      await (await caches.open(PAGES_CACHE)).put(request, response.clone());
    } else if (await caches.has(PAGES_CACHE)) {
      await (await caches.open(PAGES_CACHE)).delete(request); // no longer a scan page for this user
    }
    return response;
  } catch (error) {
    const cached = await caches.match(request, { cacheName: PAGES_CACHE });
    if (cached) return cached;
    const offline = await caches.match(OFFLINE_URL, { cacheName: STATIC_CACHE });
    if (offline) return offline;
    throw error;
  }
}

// A page opened before this worker controlled it was not seen passing: the page asks to keep it (once).
self.addEventListener("message", (event) => {
  const data = event.data || {};
  if (data.type !== "keep-page" || typeof data.url !== "string") return;
  const url = new URL(data.url);
  if (url.origin !== self.location.origin) return;
  event.waitUntil(page(new Request(url.href, { credentials: "same-origin" })).catch(() => {}));
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.method !== "GET") {
    if (url.pathname === LOGOUT_URL) {
      // the pages kept are this user's: gone before the logout itself is sent
      event.respondWith(caches.delete(PAGES_CACHE).then(() => fetch(request)));
    }
    return; // other POSTs (scans included) go to the network untouched; the pages' offline queue keeps scans
  }
  if (isStatic(url)) {
    event.respondWith(fromStatic(request));
  } else if (request.mode === "navigate") {
    event.respondWith(page(request));
  }
  // anything else (the API, downloads, PDFs): the network, never kept
});
