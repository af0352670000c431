-- A stand-in for Envoy's HTTP Lua filter, for running the real wansteer filter in LuaJIT (the
-- Lua Envoy embeds). It provides the stream handle API the filter may use, as Envoy does: the
-- script is loaded once into a Lua state (one worker's), then envoy_on_request runs as a
-- coroutine per request with a handle that is only valid during that request.
--
-- It is held to Envoy (source/extensions/filters/http/lua/ wrappers.h and lua_filter.cc, and
-- test/envoy/contract.test.ts, which runs one table of cases through this and a real Envoy):
-- handles are userdata whose methods must be called with `:` and which take no new fields;
-- the connection's dynamic metadata has get and __pairs but no set; headers:get() of a missing
-- header returns nothing; httpCall checks its arguments in Envoy's order with Envoy's messages
-- (the positional timeout through luaL_checkint, so it is required), and an asynchronous call
-- returns nothing at all.
--
--   luajit harness.lua SCENARIO.lua
--
-- SCENARIO.lua returns a table (test/envoy/driver.ts writes it):
--   script | source   the filter file to load, or its text (a rendered default_source_code)
--   package_path      where require() looks; "" proves a rendered source needs no files
--   clusters          cluster names httpCall accepts (Envoy rejects calls to unknown clusters)
--   requests          list of { headers = { {name, value}, ... }, at = seconds (os.time() during
--                     the request, relative to the run's start; default: the previous request's),
--                     stream_info = { downstreamLocalAddress = "...", routeName = "...", ... },
--                     peer_uri_sans = {...}, raise = { method name = error message },
--                     trace = true (emit a `call` event per handle method called) }
--
-- Everything the script does through a handle is written to stdout, one JSON object a line.

local scenario_file = arg[1]
if not scenario_file then
  io.stderr:write("usage: luajit harness.lua SCENARIO.lua\n")
  os.exit(2)
end
local scenario = dofile(scenario_file)

-- JSON output ----------------------------------------------------------------------------------

local function encode(value)
  local kind = type(value)
  if kind == "nil" then
    return "null"
  elseif kind == "boolean" or kind == "number" then
    return tostring(value)
  elseif kind == "string" then
    return '"' .. value:gsub('[%c"\\]', function(c)
      return string.format("\\u%04x", c:byte())
    end) .. '"'
  elseif kind == "table" then
    if next(value) == nil then
      return "{}"
    end
    if #value > 0 or value.__array then
      local items = {}
      for i, item in ipairs(value) do
        items[i] = encode(item)
      end
      return "[" .. table.concat(items, ",") .. "]"
    end
    local keys = {}
    for key in pairs(value) do
      if key ~= "__array" then
        keys[#keys + 1] = tostring(key)
      end
    end
    table.sort(keys)
    local items = {}
    for i, key in ipairs(keys) do
      items[i] = encode(key) .. ":" .. encode(value[key])
    end
    return "{" .. table.concat(items, ",") .. "}"
  end
  return encode("<" .. kind .. ">")
end

local function emit(event)
  io.stdout:write(encode(event), "\n")
end

-- Objects with methods, like Envoy's userdata wrappers -----------------------------------------

-- Every method checks that the request it belongs to is still running: Envoy fails a script
-- that keeps a handle (or anything obtained from it) beyond its coroutine. Like Envoy's, the
-- object is a userdata: a field that is no method reads as nil, assigning one is an error, and
-- a method called with `.` instead of `:` fails Envoy's luaL_checkudata on its first argument.
local function object(request, methods)
  local proxy = newproxy(true)
  local wrapped = {}
  for name, fn in pairs(methods) do
    wrapped[name] = function(self, ...)
      if self ~= proxy then
        error("bad argument #1 to '" .. name .. "' (userdata expected, got " .. type(self) .. ")", 2)
      end
      if request.ended then
        emit({ event = "stale-handle", request = request.index, method = name })
        error("object used outside of proper coroutine", 2)
      end
      if request.trace then
        emit({ event = "call", request = request.index, method = name })
      end
      local message = request.raise and request.raise[name]
      if message then
        error(message, 2)
      end
      return fn(...)
    end
  end
  getmetatable(proxy).__index = wrapped
  return proxy
end

local function lower(name)
  return type(name) == "string" and name:lower() or name
end

local function header_map(request, entries)
  local methods = {}
  local function values(key)
    local found = {}
    for _, entry in ipairs(entries) do
      if entry[1] == lower(key) then
        found[#found + 1] = entry[2]
      end
    end
    return found
  end
  local function mutated(op, key, value)
    emit({ event = "header-mutation", request = request.index, op = op, key = key, value = value })
  end
  -- Several values of one header come back joined with ","; a missing one is no value at all.
  function methods.get(key)
    local found = values(key)
    if #found == 0 then
      return
    end
    return table.concat(found, ",")
  end
  function methods.getAtIndex(key, index)
    return values(key)[index + 1]
  end
  function methods.getNumValues(key)
    return #values(key)
  end
  function methods.add(key, value)
    mutated("add", key, value)
    entries[#entries + 1] = { lower(key), value }
  end
  function methods.replace(key, value)
    mutated("replace", key, value)
    methods.remove(key)
    entries[#entries + 1] = { lower(key), value }
  end
  function methods.remove(key)
    mutated("remove", key)
    for i = #entries, 1, -1 do
      if entries[i][1] == lower(key) then
        table.remove(entries, i)
      end
    end
  end
  return object(request, methods)
end

-- A stream's dynamic metadata can be written; a connection's, from Lua, only read (Envoy's
-- ConnectionDynamicMetadataMapWrapper exports get and __pairs, no set).
local function metadata_map(request, store, writable)
  local methods = {
    get = function(namespace)
      return store[namespace]
    end,
  }
  if writable then
    methods.set = function(namespace, key, value)
      store[namespace] = store[namespace] or {}
      store[namespace][key] = value
    end
  end
  return object(request, methods)
end

local STREAM_INFO_ADDRESSES = {
  "downstreamLocalAddress",
  "downstreamDirectLocalAddress",
  "downstreamRemoteAddress",
  "downstreamDirectRemoteAddress",
}

local function stream_info(request, fields, metadata, ssl)
  local methods = {
    protocol = function()
      return fields.protocol or "HTTP/1.1"
    end,
    dynamicMetadata = function()
      return metadata
    end,
    requestedServerName = function()
      return fields.requestedServerName or ""
    end,
    routeName = function()
      return fields.routeName or ""
    end,
    downstreamSslConnection = function()
      return ssl
    end,
  }
  for _, name in ipairs(STREAM_INFO_ADDRESSES) do
    methods[name] = function()
      return fields[name]
    end
  end
  return object(request, methods)
end

-- httpCall ------------------------------------------------------------------------------------

local known_clusters = {}
for _, name in ipairs(scenario.clusters or {}) do
  known_clusters[name] = true
end

-- luaL_checkint: a number, or a string that reads as one, truncated to an integer. Envoy 1.39's
-- messages count arguments after the handle and name the method (contract.test.ts).
local function check_int(value, position)
  local n = tonumber(value)
  if type(value) ~= "number" and not (type(value) == "string" and n ~= nil) then
    error("bad argument #" .. position .. " to 'httpCall' (number expected, got " .. type(value) .. ")", 0)
  end
  return n >= 0 and math.floor(n) or math.ceil(n)
end

local function http_call(request, cluster, headers, body, timeout_or_options, asynchronous)
  local form, timeout_ms = "positional", nil
  if type(timeout_or_options) == "table" then
    form = "options"
    timeout_ms = timeout_or_options.timeout_ms and check_int(timeout_or_options.timeout_ms, 4) or 0
    asynchronous = timeout_or_options.asynchronous
  elseif asynchronous ~= nil and type(asynchronous) ~= "boolean" then
    error("http call asynchronous flag must be 'true', 'false', or empty", 0)
  end
  if type(cluster) ~= "string" and type(cluster) ~= "number" then
    error("bad argument #1 to 'httpCall' (string expected, got " .. type(cluster) .. ")", 0)
  end
  if type(headers) ~= "table" then
    error("bad argument #2 to 'httpCall' (table expected, got " .. type(headers) .. ")", 0)
  end
  if body ~= nil and type(body) ~= "string" and type(body) ~= "number" then
    error("bad argument #3 to 'httpCall' (string expected, got " .. type(body) .. ")", 0)
  end
  if form == "positional" then
    timeout_ms = check_int(timeout_or_options, 4)
  end
  if timeout_ms < 0 then
    error("http call timeout must be >= 0", 0)
  end
  if not known_clusters[cluster] then
    error("http call cluster invalid. Must be configured", 0)
  end
  if headers[":method"] == nil or headers[":path"] == nil or headers[":authority"] == nil then
    error("http call headers must include ':path', ':method', and ':authority'", 0)
  end
  local copied = {}
  for key, value in pairs(headers) do
    copied[key] = value
  end
  emit({
    event = "httpCall",
    request = request.index,
    form = form,
    cluster = cluster,
    headers = copied,
    body = body,
    timeout_ms = timeout_ms,
    asynchronous = asynchronous == true,
  })
  if asynchronous == true then
    -- Envoy sends the request and returns at once, with no value: the answer is never seen.
    return
  end
  -- A synchronous call suspends the script (and the request) until the answer comes.
  return coroutine.yield("httpCall")
end

-- The request handle -----------------------------------------------------------------------------

local function request_handle(request)
  local headers = header_map(request, request.headers)
  local stream_metadata = metadata_map(request, {}, true)
  local ssl = nil
  if request.peer_uri_sans then
    ssl = object(request, {
      uriSanPeerCertificate = function()
        return request.peer_uri_sans
      end,
      peerCertificatePresented = function()
        return true
      end,
    })
  end
  local info = stream_info(request, request.stream_info or {}, stream_metadata, ssl)
  -- Nothing a connection carries is kept here: the filter may only read it.
  local connection_metadata = metadata_map(request, {}, false)
  local methods = {
    headers = function()
      return headers
    end,
    streamInfo = function()
      return info
    end,
    connection = function()
      return object(request, {
        ssl = function()
          return ssl
        end,
      })
    end,
    httpCall = function(...)
      return http_call(request, ...)
    end,
    respond = function(response_headers, body)
      emit({ event = "respond", request = request.index, headers = response_headers, body = body })
      coroutine.yield("respond")
    end,
    body = function()
      emit({ event = "body", request = request.index })
      coroutine.yield("body")
      return nil
    end,
  }
  for _, level in ipairs({ "logTrace", "logDebug", "logInfo", "logWarn", "logErr", "logCritical" }) do
    methods[level] = function(message)
      emit({ event = "log", request = request.index, level = level, message = message })
    end
  end
  methods.connectionStreamInfo = function()
    return object(request, {
      dynamicMetadata = function()
        return connection_metadata
      end,
    })
  end
  return object(request, methods)
end

-- Load the script, then run each request ---------------------------------------------------------

package.path = scenario.package_path or ""
package.cpath = ""

-- os.time() as the requests say (`at`), so a test can let time pass between two of them.
local START, now = 1000000, 0
os.time = function()
  return START + now
end

local globals_before = {}
for name in pairs(_G) do
  globals_before[name] = true
end

local chunk, load_error
if scenario.source then
  chunk, load_error = loadstring(scenario.source, "=default_source_code")
else
  chunk, load_error = loadfile(scenario.script)
end
if chunk then
  local ok, err = pcall(chunk)
  if not ok then
    chunk, load_error = nil, err
  end
end
if not chunk then
  emit({ event = "load-error", message = tostring(load_error) })
  os.exit(1)
end
emit({ event = "loaded" })

for index, request in ipairs(scenario.requests or {}) do
  request.index = index
  request.headers = request.headers or {}
  request.headers.__array = true
  local before = { __array = true }
  for i, entry in ipairs(request.headers) do
    -- Envoy's header maps hold lower-case names whatever the client sent.
    entry[1] = lower(entry[1])
    before[i] = { entry[1], entry[2] }
  end
  now = request.at or now
  local handle = request_handle(request)
  local co = coroutine.create(envoy_on_request)
  local suspended = { __array = true }
  local ok, yielded = coroutine.resume(co, handle)
  while ok and coroutine.status(co) == "suspended" do
    suspended[#suspended + 1] = yielded
    ok, yielded = coroutine.resume(co, { [":status"] = "200" }, "")
  end
  if not ok then
    emit({ event = "script-error", request = index, message = tostring(yielded) })
  end
  request.ended = true
  emit({ event = "request-end", request = index, suspended = suspended, headers_before = before, headers_after = request.headers })
end

local added = { __array = true }
for name in pairs(_G) do
  if not globals_before[name] then
    added[#added + 1] = name
  end
end
table.sort(added)
emit({ event = "globals", added = added })
