-- W0: GET /health (no database).
wrk.path = "/health"
done = require("report").done
