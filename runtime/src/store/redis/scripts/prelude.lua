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

-- On a single Redis (not a cluster) the heartbeat flush does not touch the license's keys: it
-- moves three global sorted sets, one command each per flush (scores in microseconds since
-- the Unix epoch, members "KEY token" or "KEY hardware_hash"):
--   DEADLINES    session deadlines (also the index the recovery sweep reads),
--   BEATS        session last heartbeats,
--   DEVICE_BEATS device last heartbeats.
-- Every per-license script then also gets these keys (KEYS[6..8]) and reads a session's or
-- device's times as the later of the times hash (written when the session starts) and the
-- sorted set. On a cluster they are absent: a script may touch one slot only, so there the
-- flush keeps the times hash itself current.
local DEADLINES, BEATS, DEVICE_BEATS
if KEYS[6] == 'tessera:deadlines' then
  DEADLINES, BEATS, DEVICE_BEATS = KEYS[6], KEYS[7], KEYS[8]
end
local LICENSE = REC and string.sub(REC, 6, #REC - 5)

local T_SHIFT = 62135596800
local function t_of_score(score)
  local us = tonumber(score)
  local secs = math.floor(us / 1000000)
  return string.format('%014d%09d', secs + T_SHIFT, (us - secs * 1000000) * 1000)
end
-- The score of a T string: whole microseconds, rounded down like the flush's scores.
local function score_of_t(t)
  return (tonumber(string.sub(t, 1, 14)) - T_SHIFT) * 1000000
    + math.floor(tonumber(string.sub(t, 15, 23)) / 1000)
end

-- ZMSCORE of LICENSE .. ' ' .. name for each of `names`, 2000 at a time; false when absent.
local function scores(key, names)
  local out = {}
  local n = #names
  local i = 1
  while i <= n do
    local j = math.min(i + 1999, n)
    local members = {}
    for k = i, j do members[#members + 1] = LICENSE .. ' ' .. names[k] end
    local got = redis.call('ZMSCORE', key, unpack(members))
    for k = 1, #members do out[#out + 1] = got[k] end
    i = j + 1
  end
  return out
end

-- Session times ("deadline T .. heartbeat T") of `tokens` from the times hash (`stored`, in
-- the same order, false where missing) with the later times of the global sets folded in.
local function fresh_session_times(tokens, stored)
  if not DEADLINES or #tokens == 0 then return stored end
  local d, b = scores(DEADLINES, tokens), scores(BEATS, tokens)
  local out = {}
  for i = 1, #tokens do
    local v = stored[i]
    if v then
      local deadline, beat = deadline_of(v), heartbeat_of(v)
      if d[i] then deadline = tmax(deadline, t_of_score(d[i])) end
      if b[i] then beat = tmax(beat, t_of_score(b[i])) end
      v = deadline .. beat
    end
    out[i] = v
  end
  return out
end

-- Device states ("1"/"0" .. heartbeat T) of `hws` (`stored` as above); only an active
-- device's state takes the later heartbeat of DEVICE_BEATS.
local function fresh_device_states(hws, stored)
  if not DEVICE_BEATS or #hws == 0 then return stored end
  local b = scores(DEVICE_BEATS, hws)
  local out = {}
  for i = 1, #hws do
    local v = stored[i]
    if v and is_active(v) and b[i] then
      v = '1' .. tmax(string.sub(v, 2), t_of_score(b[i]))
    end
    out[i] = v
  end
  return out
end

-- The times hash as field/value pairs with every session's and device's times made fresh.
local function fresh_times_pairs()
  local pairs_ = redis.call('HGETALL', TIMES)
  if not DEADLINES then return pairs_ end
  local s_names, s_vals, s_at, a_names, a_vals, a_at = {}, {}, {}, {}, {}, {}
  for i = 1, #pairs_, 2 do
    local kind, name = string.sub(pairs_[i], 1, 2), string.sub(pairs_[i], 3)
    if kind == 's:' then
      s_names[#s_names + 1], s_vals[#s_vals + 1], s_at[#s_at + 1] = name, pairs_[i + 1], i + 1
    elseif kind == 'a:' then
      a_names[#a_names + 1], a_vals[#a_vals + 1], a_at[#a_at + 1] = name, pairs_[i + 1], i + 1
    end
  end
  local s_fresh = fresh_session_times(s_names, s_vals)
  for k = 1, #s_at do pairs_[s_at[k]] = s_fresh[k] end
  local a_fresh = fresh_device_states(a_names, a_vals)
  for k = 1, #a_at do pairs_[a_at[k]] = a_fresh[k] end
  return pairs_
end
