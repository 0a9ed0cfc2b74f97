-- BATCH purchases per request.
local counter = 0
local members = tonumber(os.getenv("MEMBERS") or "10000")
local size = tonumber(os.getenv("BATCH") or "1000")
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
  local parts = {}
  for i = 1, size do
    counter = counter + 1
    parts[i] = string.format(
      '{"type":"purchase","event_id":"b%s-%d","member":{"external_id":"m-%d"},"occurred_at":"%s","amount":"%d.50"}',
      prefix, counter, math.random(1, members), now, math.random(1, 200))
  end
  local body = '{"events":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format("POST", "/v1/events/batch", {["Authorization"] = "Bearer " .. key,
    ["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status ~= 200 then
    io.stderr:write("unexpected status " .. status .. "\n")
  end
end
