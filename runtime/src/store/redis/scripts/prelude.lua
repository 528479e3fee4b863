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

-- A session's times value: deadline T string followed by last-heartbeat T string.
local function deadline_of(times) return string.sub(times, 1, 23) end
local function heartbeat_of(times) return string.sub(times, 24, 46) end

-- An activation's state value: "1" (active) or "0", followed by its last-heartbeat T string.
local function is_active(state) return string.sub(state, 1, 1) == '1' end

-- Ended sessions of a license, newest first, capped: "reason ended_at token_hex".
local ENDED_CAP = 1000
local function log_end(ended_key, token, reason, at)
  redis.call('LPUSH', ended_key, reason .. ' ' .. at .. ' ' .. token)
end
local function trim_ended(ended_key)
  redis.call('LTRIM', ended_key, 0, ENDED_CAP - 1)
end

-- HSET of many field/value pairs, in chunks that stay below Lua's unpack limit.
local function hset_pairs(key, pairs)
  local n = #pairs
  local i = 1
  while i <= n do
    local j = math.min(i + 3999, n)
    redis.call('HSET', key, unpack(pairs, i, j))
    i = j + 1
  end
end

-- Per-license keys, in the order every per-license script receives them.
local REC, ACT, ACT_ST, SES, SES_T, ENDED = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
