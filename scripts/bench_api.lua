-- Requests of scripts/bench api for wrk: wrk -s scripts/bench_api.lua URL -- MODE FILE THREADS RUN [AUTH] [CSRF]
-- MODE: pick, scan, get (the application) or bare-pick, bare-scan, bare-get (scripts/bench_bare.py).
-- FILE: one work item a line, "<slip number or row id> <serial>", dealt out to the threads; each thread goes
-- through its own items in order, so that no two requests of a run pick the same device. RUN makes the
-- Idempotency-Keys of this run unique.
local threads = {}
local created = 0

function setup(thread)
  thread:set("tid", created)
  created = created + 1
  table.insert(threads, thread)
end

function init(args)
  mode, run, auth, csrf = args[1], args[4], args[5] or "", args[6] or ""
  local nthreads = tonumber(args[3])
  items = {}
  local i = 0
  for line in io.lines(args[2]) do
    if i % nthreads == tid then
      local a, b = line:match("^(%S+)%s+(%S+)$")
      table.insert(items, { a, b })
    end
    i = i + 1
  end
  pos, picked, other, wrapped = 0, 0, 0, 0
end

function request()
  pos = pos + 1
  if pos > #items then
    pos, wrapped = 1, wrapped + 1
  end
  local a, b = items[pos][1], items[pos][2]
  if mode == "pick" then
    return wrk.format("POST", "/api/v1/slips/" .. a .. "/picks", {
      ["Authorization"] = "Bearer " .. auth,
      ["Content-Type"] = "application/json",
      ["Idempotency-Key"] = "bench-" .. run .. "-" .. tid .. "-" .. pos .. "-" .. wrapped,
    }, '{"serial": "' .. b .. '"}')
  elseif mode == "scan" then
    return wrk.format("POST", "/bordereaux/" .. a .. "/scan", {
      ["Cookie"] = auth,
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["Accept"] = "application/json",
      ["X-CSRFToken"] = csrf,
    }, "csrf_token=" .. csrf .. "&code=" .. b)
  elseif mode == "get" then
    return wrk.format("GET", "/api/v1/devices/" .. b, { ["Authorization"] = "Bearer " .. auth })
  elseif mode == "bare-pick" then
    return wrk.format("POST", "/bare/pick/" .. a, { ["Content-Type"] = "application/json" },
      '{"serial": "' .. b .. '"}')
  elseif mode == "bare-scan" then
    return wrk.format("POST", "/bare/scan/" .. a, { ["Content-Type"] = "application/x-www-form-urlencoded" },
      "csrf_token=x&code=" .. b)
  else
    return wrk.format("GET", "/bare/device/" .. b)
  end
end

function response(status, headers, body)
  if status == 200 and body:find('"outcome": *"picked"') then
    picked = picked + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local p, o, w = 0, 0, 0
  for _, t in ipairs(threads) do
    p, o, w = p + t:get("picked"), o + t:get("other"), math.max(w, t:get("wrapped"))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "seconds": %.3f, "p50_ms": %.2f, "p99_ms": %.2f, "non2xx": %d, ' ..
    '"socket_errors": %d, "picked": %d, "other": %d, "wrapped": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.status, e.connect + e.read + e.write + e.timeout, p, o, w))
end
