-- W1: GET /items/{id} with a random id in 1..max_id (first script argument).
local max_id = 10000

function init(args)
  max_id = tonumber(args[1]) or max_id
  math.randomseed(os.time())
end

function request()
  return wrk.format("GET", "/items/" .. math.random(1, max_id))
end

done = require("report").done
