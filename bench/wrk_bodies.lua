-- wrk script: POST the bodies in the file named after "--", one JSON document per line, in turn.
-- Headers come from the command line (-H).
--
--   wrk ... URL -- BODIES [MEAN_GAP_MS [SEED]]
--
-- With MEAN_GAP_MS, each connection waits an exponentially distributed time (that mean) before
-- each request: with many connections, arrivals are close to a Poisson stream at
-- connections / MEAN_GAP_MS per ms, never in lock-step bursts. Without it, each connection
-- sends its next request as soon as the last is answered (closed loop).
-- At the end it prints "status CODE COUNT" lines and the latency percentiles in microseconds.
local bodies = {}
local next_body = 0
local mean_gap_ms = 0
statuses = {}

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    bodies[#bodies + 1] = line
  end
  mean_gap_ms = tonumber(args[2] or "0")
  math.randomseed(tonumber(args[3] or "1"))
end

function request()
  next_body = next_body % #bodies + 1
  return wrk.format("POST", nil, nil, bodies[next_body])
end

function delay()
  if mean_gap_ms <= 0 then
    return 0
  end
  return -math.log(1 - math.random()) * mean_gap_ms
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for code, n in pairs(thread:get("statuses")) do
      counts[code] = (counts[code] or 0) + n
    end
  end
  for code, n in pairs(counts) do
    io.write(string.format("status %d %d\n", code, n))
  end
  for _, p in ipairs({ 50, 90, 99, 99.9 }) do
    io.write(string.format("latency_us %g %d\n", p, latency:percentile(p)))
  end
  io.write(string.format("errors %d %d %d %d %d\n", summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout))
end
