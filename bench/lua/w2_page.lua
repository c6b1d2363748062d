-- W2: GET /items?limit=50&offset=N with a random N in 0..max_offset (first script argument).
local max_offset = 9950

function init(args)
  max_offset = tonumber(args[1]) or max_offset
  math.randomseed(os.time())
end

function request()
  return wrk.format("GET", "/items?limit=50&offset=" .. math.random(0, max_offset))
end

done = require("report").done
