-- Prelude of every Tessera script (scripts.rs prepends it).
--
-- Times are fixed-width "T strings": 14 digits of seconds since 0001-01-01T00:00:00Z, then
-- 9 digits of nanoseconds (23 characters). They are compared by their two numeric parts, each
-- exact in a Lua double, so comparisons are exact and independent of the server's locale.
local function tcmp(a, b)
  local sa, sb = tonumber(string.sub(a, 1, 14)), tonumber(string.sub(b, 1, 14))
  if sa ~= sb then
    if sa < sb then return -1 else return 1 end
  end
  local na, nb = tonumber(string.sub(a, 15, 23)), tonumber(string.sub(b, 15, 23))
  if na == nb then return 0 elseif na < nb then return -1 else return 1 end
end

local function tmax(a, b)
  if tcmp(a, b) >= 0 then return a else return b end
end

-- The times hash of a license holds everything a heartbeat moves, so a flush reads and
-- writes one key per license:
--   's:' .. token -> deadline T string followed by last-heartbeat T string
--   'a:' .. hardware hash -> '1' (active) or '0', followed by last-heartbeat T string
local function sf(token) return 's:' .. token end
local function af(hw) return 'a:' .. hw end
local function deadline_of(times) return string.sub(times, 1, 23) end
local function heartbeat_of(times) return string.sub(times, 24, 46) end
local function is_active(state) return string.sub(state, 1, 1) == '1' end

-- Ended sessions of a license, newest first, capped: "reason ended_at token_hex".
local ENDED_CAP = 1000
local function log_end(ended_key, token, reason, at)
  redis.call('LPUSH', ended_key, reason .. ' ' .. at .. ' ' .. token)
end
local function trim_ended(ended_key)
  redis.call('LTRIM', ended_key, 0, ENDED_CAP - 1)
end

-- A command over many arguments, 2000 at a time (below Lua's unpack limit; an even count,
-- so field/value pairs stay together).
local function chunked(command, key, args)
  local n = #args
  local i = 1
  while i <= n do
    local j = math.min(i + 1999, n)
    redis.call(command, key, unpack(args, i, j))
    i = j + 1
  end
end
local function hset_pairs(key, pairs) chunked('HSET', key, pairs) end

-- Per-license keys, in the order every per-license script receives them.
local REC, ACT, SES, TIMES, ENDED = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
