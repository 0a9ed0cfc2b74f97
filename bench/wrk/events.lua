-- One purchase per request, unique event ids, random members among MEMBERS seeded ones.
local counter = 0
local members = tonumber(os.getenv("MEMBERS") or "10000")
local key = os.getenv("KEY")
local now = os.getenv("OCCURRED_AT")
local prefix = ""

function init(args)
  prefix = tostring(math.random(1, 2000000000)) .. "-" .. tostring(os.time())
  math.randomseed(os.time() + math.random(1, 100000))
end

local pause = tonumber(os.getenv("DELAY_MS") or "0")
if pause > 0 then
  function delay() return pause end
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"type":"purchase","event_id":"w%s-%d","member":{"external_id":"m-%d"},"occurred_at":"%s","amount":"%d.50"}',
    prefix, counter, math.random(1, members), now, math.random(1, 200))
  return wrk.format("POST", "/v1/events", {["Authorization"] = "Bearer " .. key,
    ["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status ~= 201 then
    io.stderr:write("unexpected status " .. status .. ": " .. body .. "\n")
  end
end
