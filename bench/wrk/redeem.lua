-- POST a redemption of REWARD for a random member (ids read from IDS_FILE); DELAY_MS paces each connection.
local ids = {}
local key = os.getenv("KEY")
local reward = os.getenv("REWARD")
local pause = tonumber(os.getenv("DELAY_MS") or "0")

function init(args)
  for line in io.lines(os.getenv("IDS_FILE")) do ids[#ids + 1] = line end
  math.randomseed(os.time() + math.random(1, 100000))
end

if pause > 0 then
  function delay() return pause end
end

function request()
  local body = string.format('{"member_id":"%s","reward_id":"%s"}', ids[math.random(1, #ids)], reward)
  return wrk.format("POST", "/v1/redemptions", {["Authorization"] = "Bearer " .. key,
    ["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status ~= 201 then
    io.stderr:write("unexpected status " .. status .. ": " .. body .. "\n")
  end
end
