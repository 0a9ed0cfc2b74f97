-- GET a random member's balance; member ids are read from IDS_FILE.
local ids = {}
local key = os.getenv("KEY")

function init(args)
  for line in io.lines(os.getenv("IDS_FILE")) do ids[#ids + 1] = line end
  math.randomseed(os.time() + math.random(1, 100000))
end

local pause = tonumber(os.getenv("DELAY_MS") or "0")
if pause > 0 then
  function delay() return pause end
end

function request()
  local id = ids[math.random(1, #ids)]
  return wrk.format("GET", "/v1/members/" .. id .. "/balance", {["Authorization"] = "Bearer " .. key})
end

function response(status, headers, body)
  if status ~= 200 then
    io.stderr:write("unexpected status " .. status .. "\n")
  end
end
