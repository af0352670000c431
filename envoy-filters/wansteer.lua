-- wansteer session reporter (session mode): tells the node agent which session a request
-- belongs to, so the agent can steer that connection's packets to the WAN link its route
-- deserves. Envoy calls envoy_on_request for every request at the placement the EnvoyFilter
-- chose; all logic lives in the wansteer.report module, all settings (placement, agent
-- cluster, header allow-list) in wansteer.config, both rendered into this script by
-- `wansteer render envoyfilter` (see docs/envoy.md).
local report = require("wansteer.report")
local config = require("wansteer.config")

local on_request = report.new(config)

function envoy_on_request(handle)
  on_request(handle)
end
