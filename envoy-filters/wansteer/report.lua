-- wansteer.report: turns one request's stream handle into a SessionReport (the JSON contract in
-- src/steering/types.ts) and sends it to the node agent with a fire-and-forget httpCall.
--
-- Envoy's Lua rules, kept here:
--   * no globals; the one thing kept between requests is the table of connections already
--     reported (below), a local of the closure M.new returns: one per Lua state, and Envoy
--     has one Lua state per worker thread;
--   * the stream handle is used only inside the call that received it, never stored;
--   * nothing blocks: the only I/O is an asynchronous httpCall;
--   * the request is never failed, delayed or altered: every Envoy call is protected, a missing
--     or odd field means "no report", and request headers are only ever read;
--   * a request of a connection that already reported its class costs almost nothing: the quick
--     path (known_request) reads the connection's addresses and the class's values and compares
--     them with the table, under one pcall; anything else goes down the full, checked path.
local M = {}

-- Which end of the downstream connection is the session's local end (see docs/envoy.md).
local PLACEMENTS = {
  -- The proxy's own end is local, the client remote: the WAN carries the replies local -> remote.
  ["sidecar-inbound"] = { direction = "inbound", own = "downstreamLocalAddress", peer = "downstreamDirectRemoteAddress" },
  ["gateway"] = { direction = "inbound", own = "downstreamLocalAddress", peer = "downstreamDirectRemoteAddress" },
  -- The application's socket is local, the address it dialled (original_dst) remote.
  ["sidecar-outbound"] = { direction = "outbound", own = "downstreamDirectRemoteAddress", peer = "downstreamLocalAddress" },
}

-- Placements whose downstream can be HTTP/3 (QUIC, so a UDP session): only a gateway's listener
-- can be a QUIC one; Istio's sidecar listeners are TCP. The quick path reads the protocol only
-- where it can be something else than TCP (one call into Envoy less per request). Were a sidecar
-- ever given HTTP/3, its quick path would miss and the full path would report: more reports,
-- never fewer.
local MAY_BE_QUIC = { ["gateway"] = true }

-- Placements whose report carries the route Envoy matched (streamInfo():routeName()): their
-- routes are built from the VirtualServices, so the agent need not match the request again. An
-- inbound sidecar's routes are Istio's own per-port ones and name no VirtualService route.
local REPORTS_ROUTE = { ["sidecar-outbound"] = true, ["gateway"] = true }

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

-- The downstream TLS connection, or nil. streamInfo():downstreamSslConnection() where this
-- Envoy has it; connection():ssl() is the older way, which Envoy 1.39 still answers but with a
-- deprecation warning in its log on every call.
local function downstream_ssl(handle, info)
  local found, method = pcall(index, info, "downstreamSslConnection")
  if found and type(method) == "function" then
    return try(info, "downstreamSslConnection")
  end
  return try(try(handle, "connection"), "ssl")
end

-- Istio identities are spiffe://<trust domain>/ns/<namespace>/sa/<service account>.
local function peer_namespace(handle, info)
  local ssl = downstream_ssl(handle, info)
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

-- The part of a report that decides its class: every request attribute the route rules read,
-- as a list of values in a fixed order (CLASS_* below; false where a value is absent or does not
-- count). The authority, the allow-listed headers, the peer namespace and the route always count;
-- the path, method and scheme only when some rule matches on them (config.class_fields), so a
-- connection whose requests differ only in path is still one session of one class. Two classes
-- are compared value by value (Lua strings compare by identity): nothing is built to compare.
local CLASS_AUTHORITY, CLASS_PATH, CLASS_METHOD, CLASS_SCHEME, CLASS_HEADERS = 1, 2, 3, 4, 5

local function same_class(a, b)
  for i = 1, #a do
    if a[i] ~= b[i] then
      return false
    end
  end
  return true
end

-- What Envoy tells about one request: the session (its addresses and the connection's key),
-- the request attributes as { name, value } (headers: a list of { name, value }) and their
-- class; or nil and why there is nothing to report.
local function observe(handle, settings)
  local info = try(handle, "streamInfo")
  if info == nil then
    return nil, "no stream info"
  end
  local own_raw, peer_raw = try(info, settings.placement.own), try(info, settings.placement.peer)
  local own, own_family = endpoint(own_raw)
  local peer, peer_family = endpoint(peer_raw)
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

  local request = { { "authority", authority }, { "path", path }, { "method", method } }
  local class_fields = settings.class_fields
  local class = {
    authority,
    class_fields.path ~= false and path,
    class_fields.method ~= false and method,
    false,
  }
  local scheme = try(headers, "get", ":scheme")
  if type(scheme) == "string" then
    request[#request + 1] = { "scheme", scheme }
    class[CLASS_SCHEME] = class_fields.scheme ~= false and scheme
  end
  -- get() joins a header's several values with ",", as Istio's matching sees them.
  local matched = {}
  for i, name in ipairs(settings.headers) do
    local value = try(headers, "get", name)
    if type(value) == "string" then
      matched[#matched + 1] = { name, value }
    else
      value = false
    end
    class[CLASS_HEADERS + i - 1] = value
  end
  if #matched > 0 then
    request[#request + 1] = { "headers", matched }
  end
  local namespace = false
  if settings.placement.direction == "inbound" then
    namespace = peer_namespace(handle, info) or false
    if namespace then
      request[#request + 1] = { "sourceNamespace", namespace }
    end
  end
  local route = false
  if settings.report_route then
    route = try(info, "routeName")
    if type(route) == "string" and route ~= "" then
      request[#request + 1] = { "routeName", route }
    else
      route = false
    end
  end
  class[settings.class_namespace] = namespace
  class[settings.class_route] = route

  local protocol = try(info, "protocol") == "HTTP/3" and "udp" or "tcp"
  return {
    family = own_family,
    -- The addresses as Envoy gave them, as the quick path (known_request) reads them.
    key = protocol .. " " .. own_raw .. " " .. peer_raw,
    class = class,
    protocol = protocol,
    own = own,
    peer = peer,
    request = request,
  }
end

-- The report's JSON body (src/steering/types.ts SessionReport).
local function encode(session, direction)
  local fields = {}
  for i, field in ipairs(session.request) do
    local value = field[2]
    if type(value) == "table" then
      local pairs_ = {}
      for j, header in ipairs(value) do
        pairs_[j] = { header[1], json_string(header[2]) }
      end
      fields[i] = { field[1], json_object(pairs_) }
    else
      fields[i] = { field[1], json_string(value) }
    end
  end
  return json_object({
    { "direction", json_string(direction) },
    { "protocol", json_string(session.protocol) },
    { "local", json_string(session.own) },
    { "remote", json_string(session.peer) },
    { "request", json_object(fields) },
  })
end

-- Connections already reported --------------------------------------------------------------------

-- What each connection last reported, so that its next requests of the same class are not
-- reported again: one report per connection and class, not one per request. Envoy keeps
-- a connection on the worker that accepted it, so this worker's table sees all its requests.
-- (Envoy's connection dynamic metadata cannot hold the marker: from Lua it is read-only.)
--
-- Keyed by the connection's addresses. Bounded: two generations of at most `limit` entries;
-- when the young one is full the old one is dropped, so a closed connection's entry goes after
-- at most 2 x limit newer ones, and a live connection's entry is carried into the young one
-- when it is used. An entry older than `refresh_s` is reported again: that heals a report the
-- agent never got (down, slow, 429) and a flow the agent aged out while the connection idled.
local function reported_connections(limit, refresh_s, now)
  local young, old, count = {}, {}, 0
  local seen = {}

  local function put(key, entry)
    if young[key] == nil then
      if count >= limit then
        young, old, count = {}, young, 0
      end
      count = count + 1
    end
    young[key] = entry
  end

  -- What this connection last reported, if it did so less than refresh_s ago.
  function seen.lookup(key)
    local entry = young[key]
    if entry == nil then
      entry = old[key]
      if entry == nil then
        return nil
      end
      old[key] = nil
      put(key, entry)
    end
    if now() - entry.at >= refresh_s then
      return nil
    end
    return entry
  end

  function seen.remember(key, class)
    put(key, { class = class, at = now() })
  end

  return seen
end

local function report(handle, settings, seen)
  local session, why = observe(handle, settings)
  if session == nil then
    log(handle, "logDebug", "no session report: " .. why)
    return
  end
  local entry = seen.lookup(session.key)
  if entry ~= nil and same_class(entry.class, session.class) then
    return
  end
  local body = encode(session, settings.placement.direction)
  -- Fire and forget: Envoy sends the call and resumes the script at once; it returns nothing.
  -- An IPv6 session is reported over IPv6, so the report comes from the session's own address.
  local cluster = session.family == 6 and settings.cluster_v6 or settings.cluster
  local ok, err = protected(handle, "httpCall", cluster, settings.call_headers, body, settings.timeout_ms, true)
  if not ok then
    log(handle, "logWarn", "session report not sent: " .. tostring(err))
    return
  end
  seen.remember(session.key, session.class)
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
  if config.cluster_v6 ~= nil and (type(config.cluster_v6) ~= "string" or config.cluster_v6 == "") then
    return nil, "cluster_v6 is not a cluster name"
  end
  -- Envoy checks the timeout with luaL_checkint: a whole number of milliseconds.
  local timeout_ms = math.floor(tonumber(config.timeout_ms) or 200)
  local headers = {}
  for _, name in ipairs(type(config.headers) == "table" and config.headers or {}) do
    if type(name) == "string" and name:match("^[%l%d!#$%%&'*+%-.^_`|~]+$") then
      headers[#headers + 1] = name
    end
  end
  table.sort(headers)
  -- Without the list (an older render), every attribute counts: more reports, never too few.
  local class_fields = {}
  if type(config.class_fields) == "table" then
    class_fields = { path = false, method = false, scheme = false }
    for _, name in ipairs(config.class_fields) do
      if class_fields[name] == false then
        class_fields[name] = true
      end
    end
  end
  return {
    placement = placement,
    cluster = config.cluster,
    cluster_v6 = config.cluster_v6 or config.cluster,
    timeout_ms = timeout_ms,
    headers = headers,
    report_route = REPORTS_ROUTE[config.placement] == true,
    may_be_quic = MAY_BE_QUIC[config.placement] == true,
    class_fields = class_fields,
    -- The class's last two values follow the headers'.
    class_namespace = CLASS_HEADERS + #headers,
    class_route = CLASS_HEADERS + #headers + 1,
    remember = math.max(1, math.floor(tonumber(config.remember_connections) or 4096)),
    refresh_s = math.max(1, tonumber(config.refresh_s) or 60),
    call_headers = {
      [":method"] = "POST",
      [":path"] = config.path or "/v1/sessions",
      [":authority"] = config.authority or config.cluster,
      ["content-type"] = "application/json",
    },
  }
end

-- The common case, made cheap: a request on a connection that reported its class less than
-- refresh_s ago. Reads only what decides that (the connection's addresses as Envoy gives them,
-- the class's values) and compares them with what the connection last reported: no address
-- checks, no tables, no strings but the key. The peer namespace is the connection's own (its
-- certificate does not change), so it is not read again. Returns true when the request needs
-- nothing more; false, or any error (a missing method, an odd value), sends the request down the
-- full path, which checks everything, logs and reports.
local function known_request(settings, seen)
  local own_method, peer_method = settings.placement.own, settings.placement.peer
  local names = settings.headers
  local class_fields = settings.class_fields
  local path, method, scheme = class_fields.path ~= false, class_fields.method ~= false, class_fields.scheme ~= false
  local report_route, class_route = settings.report_route, settings.class_route
  local may_be_quic = settings.may_be_quic
  return function(handle)
    local info = handle:streamInfo()
    local protocol = may_be_quic and info:protocol() == "HTTP/3" and "udp" or "tcp"
    local entry = seen.lookup(protocol .. " " .. info[own_method](info) .. " " .. info[peer_method](info))
    if entry == nil then
      return false
    end
    local class = entry.class
    local headers = handle:headers()
    if headers:get(":authority") ~= class[CLASS_AUTHORITY]
      or (path and headers:get(":path") ~= class[CLASS_PATH])
      or (method and headers:get(":method") ~= class[CLASS_METHOD])
      or (scheme and (headers:get(":scheme") or false) ~= class[CLASS_SCHEME])
    then
      return false
    end
    for i = 1, #names do
      if (headers:get(names[i]) or false) ~= class[CLASS_HEADERS + i - 1] then
        return false
      end
    end
    if report_route then
      local route = info:routeName()
      if route == "" or type(route) ~= "string" then
        route = false
      end
      if route ~= class[class_route] then
        return false
      end
    end
    return true
  end
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
  -- Seconds are enough for refresh_s; Envoy's Lua has the standard os library.
  local clock = type(os) == "table" and os.time or function()
    return 0
  end
  local seen = reported_connections(settings.remember, settings.refresh_s, clock)
  local known = known_request(settings, seen)
  return function(handle)
    local quick, done = pcall(known, handle)
    if quick and done then
      return
    end
    local ok, err = pcall(report, handle, settings, seen)
    if not ok then
      log(handle, "logWarn", "session report failed: " .. tostring(err))
    end
  end
end

-- Exposed for the tests.
M.endpoint = endpoint

return M
