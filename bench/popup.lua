-- wrk script for GET /v1/campaigns/popup, used by scripts/bench-origin.
--
-- Each request asks for a random customer bu-000000000000 .. bu-<users - 1> (the first script argument,
-- default 300000) with a mix of platforms, app versions, locales and placements, so customers fall in
-- zero to three of the benchmark's segments and campaigns are skipped for varied reasons. Responses are
-- counted by status; `done` prints one machine-readable line:
--   BENCH_WRK requests=.. duration_s=.. rps=.. p50_ms=.. p90_ms=.. p99_ms=.. p999_ms=.. max_ms=..
--             s200=.. s204=.. other=.. errors_connect=.. errors_read=.. errors_write=.. errors_timeout=..

local users = 300000
local platforms = { "ios", "ios", "ios", "ios", "android", "android", "android", "android", "web" }
local versions = { "5.2.0", "5.9.1", "6.1.0" }
local locales = { "id-ID", "id-ID", "id-ID", "id-ID", "en-US" }
local placements = { "home", "home", "transfer" }

local threads = {}

function setup(thread)
   thread:set("thread_number", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   if args[1] then
      users = tonumber(args[1])
   end
   math.randomseed(os.time() * 1000 + thread_number)
   s200, s204, other = 0, 0, 0
end

local function pick(list)
   return list[math.random(#list)]
end

function request()
   local path = string.format(
      "/v1/campaigns/popup?user_id=bu-%012d&platform=%s&app_version=%s&locale=%s&placement=%s",
      math.random(0, users - 1), pick(platforms), pick(versions), pick(locales), pick(placements))
   return wrk.format("GET", path)
end

function response(status, headers, body)
   if status == 200 then
      s200 = s200 + 1
   elseif status == 204 then
      s204 = s204 + 1
   else
      other = other + 1
   end
end

function done(summary, latency, requests)
   local ok, none, bad = 0, 0, 0
   for _, thread in ipairs(threads) do
      ok = ok + thread:get("s200")
      none = none + thread:get("s204")
      bad = bad + thread:get("other")
   end
   local seconds = summary.duration / 1e6
   local ms = function(p) return latency:percentile(p) / 1000 end
   local e = summary.errors
   io.write(string.format(
      "BENCH_WRK requests=%d duration_s=%.3f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f "
         .. "max_ms=%.3f s200=%d s204=%d other=%d errors_connect=%d errors_read=%d errors_write=%d "
         .. "errors_timeout=%d\n",
      summary.requests, seconds, summary.requests / seconds, ms(50), ms(90), ms(99), ms(99.9),
      latency.max / 1000, ok, none, bad, e.connect, e.read, e.write, e.timeout))
end
