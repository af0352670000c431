-- wansteer.report: turns one request's stream handle into a SessionReport (the JSON contract in
-- src/steering/types.ts) and sends it to the node agent with a fire-and-forget httpCall.
--
-- Envoy's Lua rules, kept here:
--   * no globals and nothing kept between requests (Lua state is per worker thread);
--   * the stream handle is used only inside the call that received it, never stored;
--   * nothing blocks: the only I/O is an asynchronous httpCall;
--   * the request is never failed, delayed or altered: every Envoy call is protected, a missing
--     or odd field means "no report", and request headers are only ever read.
local M = {}

-- Which end of the downstream connection is the session's local end (see docs/envoy.md).
local PLACEMENTS = {
  -- The proxy's own end is local, the client remote: the WAN carries the replies local -> remote.
  ["sidecar-inbound"] = { direction = "inbound", own = "downstreamLocalAddress", peer = "downstreamDirectRemoteAddress" },
  ["gateway"] = { direction = "inbound", own = "downstreamLocalAddress", peer = "downstreamDirectRemoteAddress" },
  -- The application's socket is local, the address it dialled (original_dst) remote.
  ["sidecar-outbound"] = { direction = "outbound", own = "downstreamDirectRemoteAddress", peer = "downstreamLocalAddress" },
}

-- Connection-level dynamic metadata namespace of the "already reported" marker.
local MARKER_NAMESPACE = "wansteer"

local function index(object, name)
  return object[name]
end

-- Calls object:name(...) without ever raising. Returns ok, result; ok is false when the
-- object is nil, has no such method (an older Envoy), or the call failed.
local function protected(object, name, ...)
  if object == nil then
    return false, "no object"
  end
  local found, method = pcall(index, object, name)
  if not found or type(method) ~= "function" then
    return false, "no method " .. name
  end
  return pcall(method, object, ...)
end

-- object:name(...) or nil.
local function try(object, name, ...)
  local ok, result = protected(object, name, ...)
  if ok then
    return result
  end
  return nil
end

local function log(handle, level, message)
  protected(handle, level, "wansteer: " .. message)
end

-- Addresses ---------------------------------------------------------------------------------

local function is_port(text)
  local n = tonumber(text)
  return n ~= nil and n >= 1 and n <= 65535 and text:sub(1, 1) ~= "0"
end

local function is_ipv4(text)
  local a, b, c, d = text:match("^(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)$")
  if not a then
    return false
  end
  for _, octet in ipairs({ a, b, c, d }) do
    if tonumber(octet) > 255 or (#octet > 1 and octet:sub(1, 1) == "0") then
      return false
    end
  end
  return true
end

local function is_ipv6(text)
  if #text < 2 or #text > 45 or not text:find(":", 1, true) or text:find(":::", 1, true) then
    return false
  end
  local _, doubles = text:gsub("::", "")
  if doubles > 1 then
    return false
  end
  local head, tail = text:match("^(.-)([^:]*)$")
  if tail:find(".", 1, true) then
    -- An embedded IPv4 address (::ffff:10.0.0.1) ends the text.
    if not is_ipv4(tail) then
      return false
    end
    text = head
  end
  for group in text:gmatch("[^:]+") do
    if not group:match("^%x%x?%x?%x?$") then
      return false
    end
  end
  return true
end

-- Envoy's "10.0.0.5:8080" / "[fd00::5]:8080" form, checked; an IPv4-mapped IPv6 address
-- becomes the IPv4 form the packets on the wire carry. Anything else (a pipe, an internal
-- listener, a scoped link-local address) is nil: such a session is not reported.
local function endpoint(address)
  if type(address) ~= "string" then
    return nil, nil
  end
  local ip4, port4 = address:match("^([%d%.]+):(%d+)$")
  if ip4 and is_ipv4(ip4) and is_port(port4) then
    return address, 4
  end
  local ip6, port6 = address:match("^%[([%x:%.]+)%]:(%d+)$")
  if ip6 and is_ipv6(ip6) and is_port(port6) then
    local mapped = ip6:lower():match("^::ffff:([%d%.]+)$")
    if mapped and is_ipv4(mapped) then
      return mapped .. ":" .. port6, 4
    end
    return address, 6
  end
  return nil, nil
end

-- JSON ----------------------------------------------------------------------------------------

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function escape(char)
  return ESCAPES[char] or string.format("\\u%04x", char:byte())
end

local function json_string(text)
  return '"' .. (text:gsub('[%c"\\]', escape)) .. '"'
end

-- fields: a list of { key, encoded value } pairs, kept in order so reports are byte-stable.
local function json_object(fields)
  local parts = {}
  for i, field in ipairs(fields) do
    parts[i] = json_string(field[1]) .. ":" .. field[2]
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- The report -----------------------------------------------------------------------------------

-- Istio identities are spiffe://<trust domain>/ns/<namespace>/sa/<service account>.
local function peer_namespace(handle)
  local ssl = try(try(handle, "connection"), "ssl")
  local sans = try(ssl, "uriSanPeerCertificate")
  if type(sans) ~= "table" then
    return nil
  end
  for _, san in ipairs(sans) do
    local namespace = type(san) == "string" and san:match("^spiffe://[^/]+/ns/([^/]+)/sa/[^/]+$")
    if namespace then
      return namespace
    end
  end
  return nil
end

-- Returns the JSON body, or nil and why there is nothing to report.
local function build(handle, settings)
  local info = try(handle, "streamInfo")
  if info == nil then
    return nil, "no stream info"
  end
  local own, own_family = endpoint(try(info, settings.placement.own))
  local peer, peer_family = endpoint(try(info, settings.placement.peer))
  if own == nil or peer == nil then
    return nil, "connection addresses are not ip:port"
  end
  if own_family ~= peer_family then
    return nil, "connection addresses differ in family"
  end

  local headers = try(handle, "headers")
  local authority = try(headers, "get", ":authority")
  local path = try(headers, "get", ":path")
  local method = try(headers, "get", ":method")
  if type(authority) ~= "string" or type(path) ~= "string" or type(method) ~= "string" then
    return nil, "request has no :authority, :path or :method"
  end

  local request = {
    { "authority", json_string(authority) },
    { "path", json_string(path) },
    { "method", json_string(method) },
  }
  local scheme = try(headers, "get", ":scheme")
  if type(scheme) == "string" then
    request[#request + 1] = { "scheme", json_string(scheme) }
  end
  -- get() joins a header's several values with ",", as Istio's matching sees them.
  local matched = {}
  for _, name in ipairs(settings.headers) do
    local value = try(headers, "get", name)
    if type(value) == "string" then
      matched[#matched + 1] = { name, json_string(value) }
    end
  end
  if #matched > 0 then
    request[#request + 1] = { "headers", json_object(matched) }
  end
  if settings.placement.direction == "inbound" then
    local namespace = peer_namespace(handle)
    if namespace then
      request[#request + 1] = { "sourceNamespace", json_string(namespace) }
    end
  end

  local protocol = try(info, "protocol") == "HTTP/3" and "udp" or "tcp"
  return json_object({
    { "direction", json_string(settings.placement.direction) },
    { "protocol", json_string(protocol) },
    { "local", json_string(own) },
    { "remote", json_string(peer) },
    { "request", json_object(request) },
  })
end

-- The connection's metadata, when this Envoy exposes it (connectionStreamInfo, Envoy 1.31+),
-- and whether this very report was already sent on the connection.
local function connection_marker(handle, body)
  local metadata = try(try(handle, "connectionStreamInfo"), "dynamicMetadata")
  if metadata == nil then
    return nil, false
  end
  local entry = try(metadata, "get", MARKER_NAMESPACE)
  return metadata, type(entry) == "table" and entry.reported == body
end

local function report(handle, settings)
  local body, why = build(handle, settings)
  if body == nil then
    log(handle, "logDebug", "no session report: " .. why)
    return
  end
  local metadata, sent = connection_marker(handle, body)
  if sent then
    return
  end
  -- Fire and forget: Envoy sends the call and resumes the script at once.
  local ok, err = protected(handle, "httpCall", settings.cluster, settings.call_headers, body, settings.timeout_ms, true)
  if not ok then
    log(handle, "logWarn", "session report not sent: " .. tostring(err))
    return
  end
  if metadata ~= nil then
    protected(metadata, "set", MARKER_NAMESPACE, "reported", body)
  end
end

-- Settings ----------------------------------------------------------------------------------------

local function settings_from(config)
  if type(config) ~= "table" then
    return nil, "configuration is not a table"
  end
  local placement = PLACEMENTS[config.placement]
  if placement == nil then
    return nil, "unknown placement " .. tostring(config.placement)
  end
  if type(config.cluster) ~= "string" or config.cluster == "" then
    return nil, "no agent cluster"
  end
  local timeout_ms = tonumber(config.timeout_ms) or 200
  local headers = {}
  for _, name in ipairs(type(config.headers) == "table" and config.headers or {}) do
    if type(name) == "string" and name:match("^[%l%d!#$%%&'*+%-.^_`|~]+$") then
      headers[#headers + 1] = name
    end
  end
  table.sort(headers)
  return {
    placement = placement,
    cluster = config.cluster,
    timeout_ms = timeout_ms,
    headers = headers,
    call_headers = {
      [":method"] = "POST",
      [":path"] = config.path or "/v1/sessions",
      [":authority"] = config.authority or config.cluster,
      ["content-type"] = "application/json",
    },
  }
end

-- Returns the function envoy_on_request calls with each request's handle. A broken
-- configuration does not stop Envoy loading the script: every request then logs why.
function M.new(config)
  local settings, problem = settings_from(config)
  if settings == nil then
    return function(handle)
      log(handle, "logWarn", "session reports disabled: " .. problem)
    end
  end
  return function(handle)
    local ok, err = pcall(report, handle, settings)
    if not ok then
      log(handle, "logWarn", "session report failed: " .. tostring(err))
    end
  end
end

-- Exposed for the tests.
M.endpoint = endpoint

return M
