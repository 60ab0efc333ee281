-- wrk's script for the benchmark's HTTP mode (examples/bench/http/wrk.rs writes it to
-- target/bench/http/requests.lua after these globals):
--   USERS        one line per seeded user: its bearer token, then its task ids
--   MIX          the mix's shares: { {"get", 35}, {"list", 35}, ... }
--   CREATE_BODY  the JSON body of POST /tasks
--   PATCH_BODY   the JSON body of the mix's PATCH /tasks/{id}
--
-- wrk ... -s requests.lua URL -- ENDPOINT [check]
--   ENDPOINT  get, list, create, mix (or complete: the mix's PATCH alone)
--   check     count every response that is not 2xx (wrk then hands each response to
--             Lua, which costs it CPU: the warm-up checks, the timed run does not)
--
-- Each request picks a user at random (every user alike), then one of that user's task
-- ids at random, from a generator per wrk thread seeded by the thread's number. Every
-- request is prepared once per thread, in init(): during the run, a request costs wrk
-- two random numbers and a table lookup.

local threads = {}

-- The main Lua state, once per wrk thread: number the threads (their seeds).
function setup(thread)
   table.insert(threads, thread)
   thread:set("id", #threads)
end

local users = {}

local function prepare(method, path, token, body)
   local headers = { Authorization = "Bearer " .. token }
   if body then
      headers["Content-Type"] = "application/json"
   end
   return wrk.format(method, path, headers, body)
end

local function load_users()
   for line in USERS:gmatch("[^\n]+") do
      local token, ids = nil, {}
      for word in line:gmatch("%S+") do
         if token then
            ids[#ids + 1] = word
         else
            token = word
         end
      end
      local user = { get = {}, complete = {} }
      for i, id in ipairs(ids) do
         user.get[i] = prepare("GET", "/tasks/" .. id, token)
         user.complete[i] = prepare("PATCH", "/tasks/" .. id, token, PATCH_BODY)
      end
      user.list = prepare("GET", "/tasks?completed=false", token)
      user.create = prepare("POST", "/tasks", token, CREATE_BODY)
      users[#users + 1] = user
   end
   if #users == 0 then
      error("USERS names no user")
   end
end

local random = math.random

local function user()
   return users[random(#users)]
end

local kinds = {
   get = function()
      local u = user()
      return u.get[random(#u.get)]
   end,
   list = function()
      return user().list
   end,
   create = function()
      return user().create
   end,
   complete = function()
      local u = user()
      return u.complete[random(#u.complete)]
   end,
}

-- The mix: each request one of MIX's kinds, in its share.
local function mixed()
   local total = 0
   for _, share in ipairs(MIX) do
      total = total + share[2]
   end
   return function()
      local r = random(total)
      for _, share in ipairs(MIX) do
         r = r - share[2]
         if r <= 0 then
            return kinds[share[1]]()
         end
      end
   end
end

-- Each wrk thread's own Lua state, before its connections start.
function init(args)
   local endpoint, mode = args[1], args[2]
   math.randomseed(id)
   load_users()
   if endpoint == "mix" then
      request = mixed()
   elseif kinds[endpoint] then
      request = kinds[endpoint]
   else
      error("unknown endpoint: " .. tostring(endpoint))
   end
   if mode == "check" then
      unexpected = 0
      statuses = {}
      response = function(status)
         if status < 200 or status > 299 then
            unexpected = unexpected + 1
            statuses[status] = (statuses[status] or 0) + 1
         end
      end
   end
end

-- The main Lua state, at the end: one line for the benchmark to read.
function done(summary, latency, requests)
   local checked, unexpected, counts = false, 0, {}
   for _, thread in ipairs(threads) do
      local n = thread:get("unexpected")
      if n then
         checked = true
         unexpected = unexpected + n
         for status, count in pairs(thread:get("statuses")) do
            counts[status] = (counts[status] or 0) + count
         end
      end
   end
   -- "422x6023,500x2", or "-"
   local statuses = {}
   for status, count in pairs(counts) do
      statuses[#statuses + 1] = status .. "x" .. count
   end
   table.sort(statuses)
   local e = summary.errors
   io.write(string.format(
      "bench-result requests=%d duration_us=%d p50_us=%d p99_us=%d status=%d connect=%d "
         .. "read=%d write=%d timeout=%d checked=%s unexpected=%d statuses=%s\n",
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      e.status, e.connect, e.read, e.write, e.timeout, tostring(checked), unexpected,
      #statuses == 0 and "-" or table.concat(statuses, ",")
   ))
end
