-- wrk script: each connection sends an entry then an exit for its own fresh plates.
-- Every 200 reply's event_id is appended to a per-thread file, so the harness can check
-- that each acknowledged event has exactly one stored read and decision.
local counter = 0
tid = 0  -- set per thread by setup() (thread:set), so not a local
local out = nil
local key = os.getenv("PL_KEY")
local entry = os.getenv("PL_ENTRY")
local exitl = os.getenv("PL_EXIT")
local outdir = os.getenv("PL_OUT")
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  out = io.open(outdir .. "/ok-" .. tid .. ".txt", "w")
end

local alphabet = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"

local function plate_for(n)
  local s = ""
  local v = n * 7919 + tid * 104729
  for i = 1, 6 do
    local k = (v % 33) + 1
    s = s .. alphabet:sub(k, k)
    v = math.floor(v / 33)
  end
  return "Q" .. string.char(64 + tid) .. s
end

request = function()
  counter = counter + 1
  local n = math.floor((counter + 1) / 2)
  local lane = (counter % 2 == 1) and entry or exitl
  local body = string.format('{"plate":"%s","confidence":0.97,"event_id":"w%d-%d"}', plate_for(n), tid, counter)
  return wrk.format("POST", "/api/v1/lanes/" .. lane .. "/events",
    {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}, body)
end

response = function(status, headers, body)
  if status == 200 then
    local id = string.match(body, '"event_id":%s*"([^"]+)"')
    if id then out:write(id, "\n") end
  else
    out:write("STATUS ", status, " ", body, "\n")
  end
  out:flush()
end
