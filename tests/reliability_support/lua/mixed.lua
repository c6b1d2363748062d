-- The soak workload: POST /items and GET /items/{id} (ids 1..args[1]) in turn. Each connection
-- waits args[2] ms between requests (wrk's delay()), which paces the rate. Every answer outside
-- 200-299 is counted (wrk's own error count only sees statuses above 399).
local read_ids = 100
local delay_ms = 0
local sent = 0
non_2xx = 0
local threads = {}
local body = '{"name":"Soak widget","description":"Created by wrk","price":"9.99"}'

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  read_ids = tonumber(args[1]) or read_ids
  delay_ms = tonumber(args[2]) or delay_ms
  math.randomseed(os.time())
end

function request()
  sent = sent + 1
  if sent % 2 == 0 then
    return wrk.format("GET", "/items/" .. math.random(1, read_ids))
  end
  return wrk.format("POST", "/items", {["Content-Type"] = "application/json"}, body)
end

function delay()
  return delay_ms
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non_2xx = non_2xx + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("non_2xx") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'RELIABILITY_JSON {"requests":%d,"duration_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"non_2xx":%d,"socket_errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(99), latency.max,
    bad, e.connect + e.read + e.write + e.timeout))
end
