-- mixed.lua - the request mix of the soak test (tests/soak/soak.sh), for wrk 4.
--
--   wrk -t32 -c32 -d120s --timeout 5s -s tests/soak/mixed.lua http://127.0.0.1:PORT
--
-- Every request is one of the kinds below, taken in a fixed rotation (SCHEDULE)
-- that each thread starts at a different place: valid /v1/classify at the four
-- priorities with many distinct texts and a few hot ones, texts[] batches,
-- KServe v2 infer, GET /health and /metrics, feedback, and the bad ones
-- (malformed JSON, invalid UTF-8, an unknown model, a body over server.max_body,
-- a 1 ms deadline). Each response is checked against what its kind may answer
-- (EXPECT: the statuses allowed and a word its body must hold) and counted per
-- kind and status in per-thread tables; done() adds the threads up, prints the
-- table and a verdict, and writes key=value lines to SOAK_RESULT (soak.sh reads
-- them).
--
-- Run it with as many threads as connections (-tN -cN): wrk gives a script no
-- way to tell which connection a response belongs to, but a thread with one
-- connection has one request in flight, so the response is the last request's
-- (a request lost to a closed socket is replaced by the next one: wrk calls
-- request() again on reconnect). With -t2 -c32 the attribution is ambiguous
-- and done() refuses to judge.
--
-- Environment: SOAK_RESULT (file for the results; none: stdout only),
-- SOAK_MAX_BODY (bytes of server.max_body; default 65536).

local MAX_BODY = tonumber(os.getenv("SOAK_MAX_BODY") or "65536")

-- ---- texts -------------------------------------------------------------------------------

-- Hot texts (answered from the cache most of the time) with the label they must get.
local HOT = {
  {"Breaking.Bad.S01E02.720p.mkv", "breaking_bad"},
  {"dark s01e01", "dark"},
  {"ozark s02e03", "ozark"},
  {"Game.of.Thrones.S08E06.1080p.WEB", "game_of_thrones"},
  {"Stranger.Things.S04E01.720p.NF.WEB-DL", "stranger_things"},
  {"the crown s02e04", "the_crown"},
  {"Friends.S05E14.DVDRip.XviD", "friends"},
  {"Better.Call.Saul.S06E13.1080p.AMZN", "better_call_saul"},
}

local SERIES = {"Breaking.Bad", "Dark", "Ozark", "Game.of.Thrones", "Stranger.Things",
  "The.Crown", "Friends", "Better.Call.Saul", "The.Office.US", "La.Casa.de.Papel",
  "Succession", "The.Wire", "Fargo", "Mad.Men", "Chernobyl", "Sherlock"}
local TAGS = {"720p", "1080p", "2160p", "HDTV", "WEB-DL", "x264", "x265", "AMZN", "NF",
  "DVDRip", "BluRay", "HEVC", "AAC", "REPACK", "PROPER", "iTA", "FRENCH", "MULTi"}
local SYL = {"ka", "ro", "mi", "tu", "se", "la", "no", "vi", "pe", "zu", "do", "ha"}

-- A deterministic pseudo-random generator per thread (wrk's threads each run their own
-- Lua state; math.random would be seeded the same everywhere anyway).
local seed = 1
local function rnd(n)
  seed = (seed * 1103515245 + 12345) % 2147483648
  return math.floor(seed / 65536) % n + 1
end

-- A distinct release name: a series, season/episode, two tags and a made-up word, so the
-- normalised input (the cache key) differs almost every time.
local function distinct_text()
  local w = SYL[rnd(#SYL)] .. SYL[rnd(#SYL)] .. SYL[rnd(#SYL)] .. SYL[rnd(#SYL)]
  return string.format("%s.S%02dE%02d.%s.%s.%s", SERIES[rnd(#SERIES)], rnd(12), rnd(24),
                       TAGS[rnd(#TAGS)], w, TAGS[rnd(#TAGS)])
end

-- One request in four of the valid single kinds uses a hot text.
local hot_pick = 0
local function text_or_hot()
  hot_pick = hot_pick + 1
  if hot_pick % 4 == 0 then
    local h = HOT[rnd(#HOT)]
    return h[1], h[2]
  end
  return distinct_text(), nil
end

local function jstr(s) return '"' .. s:gsub('[%c"\\]', "") .. '"' end

-- ---- the kinds -----------------------------------------------------------------------------

local JSON = {["Content-Type"] = "application/json"}
local OVERSIZED = '{"text": "' .. string.rep("a", MAX_BODY + 1024) .. '"}'

-- kind -> statuses allowed, each with a word its body must contain
EXPECT = {
  critical = {["200"] = '"label"', ["503"] = "busy", ["504"] = "deadline"},
  high = {["200"] = '"label"', ["503"] = "busy", ["504"] = "deadline"},
  normal = {["200"] = '"label"', ["503"] = "busy", ["504"] = "deadline"},
  low = {["200"] = '"label"', ["503"] = "busy", ["504"] = "deadline"},
  batch = {["200"] = '"results"', ["503"] = "busy", ["504"] = "deadline"},
  v2 = {["200"] = '"outputs"', ["503"] = "busy", ["504"] = "deadline"},
  deadline = {["200"] = '"label"', ["503"] = "busy", ["504"] = "deadline"},
  health = {["200"] = '"status"'},
  metrics = {["200"] = "edgeserve_http_requests_total"},
  feedback = {["201"] = '"feedback_total"'},
  malformed = {["400"] = "malformed JSON"},
  utf8 = {["400"] = "UTF-8"},
  unknown = {["404"] = "unknown model"},
  oversized = {["413"] = "max_body"},
}
KINDS = {"critical", "high", "normal", "low", "batch", "v2", "deadline", "health", "metrics",
  "feedback", "malformed", "utf8", "unknown", "oversized"}

-- The rotation: 40 slots; valid inference is 29/40, each bad kind 1-2/40.
local SCHEDULE = {
  "normal", "high", "critical", "low", "batch", "normal", "v2", "health", "normal", "malformed",
  "high", "deadline", "normal", "low", "utf8", "critical", "normal", "v2", "unknown", "feedback",
  "normal", "high", "batch", "low", "metrics", "normal", "critical", "deadline", "v2", "malformed",
  "normal", "high", "low", "oversized", "normal", "batch", "critical", "unknown", "v2", "normal",
}

local function classify(prio)
  local t, want = text_or_hot()
  local pr = prio
  if rnd(4) == 1 then pr = ({critical = 0, high = 1, normal = 2, low = 3})[prio] end
  local body = string.format('{"text": %s, "priority": %s}', jstr(t),
                             type(pr) == "number" and tostring(pr) or jstr(pr))
  return wrk.format("POST", "/v1/classify", JSON, body), want
end

local BUILD = {
  critical = function() return classify("critical") end,
  high = function() return classify("high") end,
  normal = function() return classify("normal") end,
  low = function() return classify("low") end,
  batch = function()
    local n, parts = rnd(8) + 1, {}
    for i = 1, n do parts[i] = jstr(i == 1 and HOT[rnd(#HOT)][1] or distinct_text()) end
    return wrk.format("POST", "/v1/classify", JSON,
                      '{"texts": [' .. table.concat(parts, ", ") .. '], "k": 2}')
  end,
  v2 = function()
    return wrk.format("POST", "/v2/models/media/infer", JSON, string.format(
      '{"id": "soak", "inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], ' ..
      '"data": [%s, %s]}], "parameters": {"k": 3}}', jstr(distinct_text()), jstr(distinct_text())))
  end,
  deadline = function()
    return wrk.format("POST", "/v1/classify", JSON,
                      string.format('{"text": %s, "timeout_ms": 1}', jstr(distinct_text())))
  end,
  health = function() return wrk.format("GET", "/health") end,
  metrics = function() return wrk.format("GET", "/metrics") end,
  feedback = function()
    local h = HOT[rnd(#HOT)]
    return wrk.format("POST", "/v1/models/media/feedback", JSON,
                      string.format('{"text": %s, "label": %s}', jstr(distinct_text()), jstr(h[2])))
  end,
  malformed = function()
    local bad = {'{"text": ', '{"text": "dark"', '{text: "dark"}', '{"text": "dark",}', "[1,2",
      "nul", '{"texts": ["a" "b"]}'}
    return wrk.format("POST", "/v1/classify", JSON, bad[rnd(#bad)])
  end,
  utf8 = function()
    local bad = {'{"text": "\255\254"}', '{"text": "dark \192\175"}', '{"text": "\237\160\128"}',
      '{"text": "ozark \128"}'}
    return wrk.format("POST", "/v1/classify", JSON, bad[rnd(#bad)])
  end,
  unknown = function()
    return wrk.format("POST", "/v1/classify", JSON,
                      string.format('{"text": %s, "model": "nope%d"}', jstr(distinct_text()), rnd(9)))
  end,
  oversized = function() return wrk.format("POST", "/v1/classify", JSON, OVERSIZED) end,
}


-- ---- per thread ------------------------------------------------------------------------------
--
-- wrk 4.1's thread:get() copies flat tables only (a table inside a table crashes it), so a
-- thread keeps its counters in one flat table, `st`, keyed by strings:
--   "c KIND STATUS" responses, "s KIND" requests made, "l KIND" requests lost (replaced
--   before their response: the socket closed), "bad" unexpected responses, "wrong" hot texts
--   answered with another label, "orphan" responses with no request, "last" os.time() of the
--   last response; and the first few unexpected responses in `samples`.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

st = {bad = 0, wrong = 0, orphan = 0, last = 0}
samples = {}
local slot, pending, pending_label, nreq = 0, nil, nil, 0

local function inc(key, n) st[key] = (st[key] or 0) + (n or 1) end

function init(args)
  seed = 7919 * (id or 1)
  slot = ((id or 1) * 7) % #SCHEDULE -- threads start at different places
  st.last = os.time()
end

function request()
  if pending and nreq == 1 and id == 1 then
    -- wrk calls request() once in the first thread before it starts, to count pipelined
    -- requests (script_verify_request): that one was never sent
    inc("s " .. pending, -1)
    pending = nil
  end
  if pending then -- the last request never got its response
    inc("l " .. pending)
    if pending ~= "oversized" and #samples < 5 then
      table.insert(samples, string.format("%s request #%d of thread %d got no response", pending,
                                          nreq, id or 0))
    end
  end
  nreq = nreq + 1
  slot = slot % #SCHEDULE + 1
  local kind = SCHEDULE[slot]
  local req, want = BUILD[kind]()
  pending, pending_label = kind, want
  inc("s " .. kind)
  return req
end

function response(status, headers, body)
  st.last = os.time()
  local kind = pending
  if not kind then
    inc("orphan")
    return
  end
  pending = nil
  local code = tostring(status)
  inc("c " .. kind .. " " .. code)
  local word = EXPECT[kind][code]
  local ok = word and body and body:find(word, 1, true)
  if ok and code == "200" and pending_label then
    local label = body:match('"label":"([^"]*)"')
    if label ~= pending_label then
      inc("wrong")
      ok = false
    end
  end
  if not ok then
    inc("bad")
    if #samples < 5 then
      table.insert(samples, kind .. " " .. code .. " " .. (body or ""):sub(1, 200):gsub("%c", " "))
    end
  end
end

-- ---- the verdict -----------------------------------------------------------------------------

function done(summary, latency, requests)
  local CODES = {"200", "201", "400", "404", "413", "503", "504"}
  local timeout_s = tonumber(os.getenv("SOAK_TIMEOUT_S") or "5")
  local want_threads = tonumber(os.getenv("SOAK_CONNECTIONS") or "0")
  local now = os.time()
  local sum, all_samples, fails = {}, {}, {}
  local stuck, lost_other = 0, 0
  local function add(k, n) sum[k] = (sum[k] or 0) + n end
  for i, t in ipairs(threads) do
    local s = t:get("st")
    for k, n in pairs(s) do if k ~= "last" then add(k, n) end end
    for k, n in pairs(s) do
      if k:sub(1, 2) == "l " and k ~= "l oversized" then lost_other = lost_other + n end
    end
    if now - (s.last or 0) > timeout_s + 1 then stuck = stuck + 1 end
    local smp = t:get("samples")
    for j = 1, #smp do if #all_samples < 10 then table.insert(all_samples, smp[j]) end end
  end
  -- the table
  io.write("\n| kind | sent | " .. table.concat(CODES, " | ") .. " | other | lost |\n")
  io.write("|---|" .. string.rep("---:|", #CODES + 3) .. "\n")
  local answered, by_code = 0, {}
  for _, kind in ipairs(KINDS) do
    local row, other = {}, 0
    for k, n in pairs(sum) do
      local kk, code = k:match("^c (%S+) (%d+)$")
      if kk == kind then
        answered = answered + n
        by_code[code] = (by_code[code] or 0) + n
        local listed = false
        for _, c in ipairs(CODES) do listed = listed or c == code end
        if not listed then other = other + n end
      end
    end
    for j, c in ipairs(CODES) do row[j] = tostring(sum["c " .. kind .. " " .. c] or 0) end
    io.write(string.format("| %s | %d | %s | %d | %d |\n", kind, sum["s " .. kind] or 0,
                           table.concat(row, " | "), other, sum["l " .. kind] or 0))
  end
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format("\nwrk: %d responses in %.1f s (%.0f/s); socket errors: connect %d, " ..
                         "read %d, write %d, timeout %d; latency p50 %.2f ms, p99 %.2f ms, " ..
                         "max %.2f ms\n", summary.requests, secs, summary.requests / secs,
                         e.connect, e.read, e.write, e.timeout, latency:percentile(50) / 1000,
                         latency:percentile(99) / 1000, latency.max / 1000))
  for _, s in ipairs(all_samples) do io.write("unexpected: " .. s .. "\n") end
  -- What must hold (docs/server/soak.md explains each).
  local function fail(fmt, ...) table.insert(fails, string.format(fmt, ...)) end
  if #threads == 0 then fail("no thread ran") end
  if want_threads > 0 and #threads ~= want_threads then
    fail("%d threads for %d connections: run wrk with -tN -cN, or responses cannot be " ..
         "attributed to their requests", #threads, want_threads)
  end
  if (sum.bad or 0) > 0 then
    fail("%d unexpected responses (wrong status or body; %d hot texts with a wrong label)",
         sum.bad, sum.wrong or 0)
  end
  if (sum.orphan or 0) > 0 then fail("%d responses to no request", sum.orphan) end
  if lost_other > 0 then fail("%d requests other than oversized got no response", lost_other) end
  if stuck > 0 then fail("%d connections got no response in the last %d s: a request hangs", stuck,
                         timeout_s + 1) end
  if e.connect > 0 then fail("%d connect errors", e.connect) end
  if e.timeout > 0 then fail("%d responses slower than the %d s timeout", e.timeout, timeout_s) end
  local lost_big = sum["l oversized"] or 0
  if e.read + e.write > lost_big then
    fail("%d read/write errors, more than the %d oversized requests whose connection the " ..
         "server closed before their 413 was read", e.read + e.write, lost_big)
  end
  local verdict = #fails == 0 and "PASS" or "FAIL"
  io.write("mixed.lua: " .. verdict .. (#fails > 0 and (": " .. table.concat(fails, "; ")) or "") ..
           "\n")
  local path = os.getenv("SOAK_RESULT")
  if path then
    local f = io.open(path, "w")
    f:write(string.format("verdict=%s\nresponses=%d\nduration_s=%.3f\nanswered=%d\n" ..
                          "unexpected=%d\nwrong_labels=%d\nlost_oversized=%d\nlost_other=%d\n" ..
                          "err_connect=%d\nerr_read=%d\nerr_write=%d\nerr_timeout=%d\n" ..
                          "p50_ms=%.3f\np99_ms=%.3f\nmax_ms=%.3f\n", verdict, summary.requests,
                          secs, answered, sum.bad or 0, sum.wrong or 0, lost_big, lost_other,
                          e.connect, e.read, e.write, e.timeout, latency:percentile(50) / 1000,
                          latency:percentile(99) / 1000, latency.max / 1000))
    for code, n in pairs(by_code) do f:write(string.format("code_%s=%d\n", code, n)) end
    for _, s in ipairs(fails) do f:write("fail=" .. s .. "\n") end
    f:close()
  end
end
