-- W3: POST /items with a valid JSON body (the same body every time: names need not be unique).
wrk.method = "POST"
wrk.path = "/items"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"name":"Benchmark widget","description":"Created by wrk","price":9.99}'

done = require("report").done
