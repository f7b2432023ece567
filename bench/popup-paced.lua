-- wrk script for GET /v1/campaigns/popup at a modest pace, used by scripts/bench-upload to see how popup
-- requests fare while a segment upload runs.
--
-- The requests are those of bench/popup.lua (its first argument is the number of customers); the second
-- argument is the pause in milliseconds each connection takes between two requests (default 5), so the
-- load is about connections * 1000 / (pause + latency) requests per second instead of all the machine
-- can take. wrk measures each request from when it is sent, so the pause is not in the latencies.
-- `done` prints the BENCH_WRK line of bench/popup.lua.

dofile("bench/popup.lua")

local pause = 5
local popup_init = init

function init(args)
   popup_init(args)
   if args[2] then
      pause = tonumber(args[2])
   end
end

function delay()
   return pause
end
