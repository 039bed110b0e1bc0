-- wrk script for bench/server.sh: every request is the same single-text
-- POST /v1/classify, on keep-alive connections (wrk's default).
-- The text is already normalised (lower case, words split on spaces), so a
-- server that normalises its input (an .esm model) and one that does not
-- (fastText) see the same tokens. BENCH_TEXT overrides it (no quotes or
-- backslashes: it is pasted into the JSON as is).
local text = os.getenv("BENCH_TEXT") or "breaking bad"
wrk.method = "POST"
wrk.body = '{"text": "' .. text .. '", "k": 1}'
wrk.headers["Content-Type"] = "application/json"
-- No response() callback: with one, wrk hands every body to Lua, which costs
-- the load generator more than some servers spend per request. Status codes
-- are still counted ("Non-2xx or 3xx responses"), and bench/server.sh checks
-- one reply body per server with curl before the load starts.
