-- Shared by every workload: wrk calls done() once at the end; it prints one JSON line that
-- bench/wrk.py parses. Latencies are in microseconds.
local M = {}

function M.done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    -- wrk counts every response with a status above 399 in errors.status.
    '"non_2xx":%d,"socket_errors":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean,
    e.status, e.connect + e.read + e.write + e.timeout))
end

return M
