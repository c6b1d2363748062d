-- W4: PATCH /items/{id} with a random id in 1..max_id (first script argument), no If-Match:
-- the update and its event, in one transaction.
local max_id = 10000

function init(args)
  max_id = tonumber(args[1]) or max_id
  math.randomseed(os.time())
end

function request()
  return wrk.format(
    "PATCH",
    "/items/" .. math.random(1, max_id),
    { ["Content-Type"] = "application/json" },
    '{"name":"Patched widget","price":"19.99"}'
  )
end

done = require("report").done
