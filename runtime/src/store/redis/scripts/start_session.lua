-- StoreOp::StartSession. ARGV: token, session json, times, max_sessions, at,
-- then (token, reason) pairs of sessions to end in the same step. On a single Redis KEYS
-- also holds the global sets and the new session's token index (KEYS[6..9]).
-- Counts sessions whose deadline is after `at`, not counting those being ended (only when the
-- license stores at least max_sessions sessions); refuses at max_sessions; otherwise ends the
-- listed sessions that exist and stores the new one.
-- Returns {'limit', 'sessions'} or {'done', ended token...}.
if redis.call('EXISTS', REC) == 0 then return {'not_found'} end
local at = ARGV[5]
local ending = {}
for i = 6, #ARGV, 2 do ending[sf(ARGV[i])] = true end
-- Fewer stored sessions than the limit (live or overdue alike) cannot reach it: skip the
-- scan, which costs as much as the license has sessions.
if redis.call('HLEN', SES) >= tonumber(ARGV[4]) then
  local live = 0
  local times = fresh_times_pairs()
  for i = 1, #times, 2 do
    local field = times[i]
    if string.sub(field, 1, 2) == 's:' and not ending[field]
      and tcmp(deadline_of(times[i + 1]), at) > 0 then
      live = live + 1
    end
  end
  if live >= tonumber(ARGV[4]) then return {'limit', 'sessions'} end
end
local out = {'done'}
for i = 6, #ARGV, 2 do
  local token = ARGV[i]
  if redis.call('HEXISTS', TIMES, sf(token)) == 1 then
    redis.call('HDEL', SES, token)
    redis.call('HDEL', TIMES, sf(token))
    log_end(ENDED, token, ARGV[i + 1], at)
    out[#out + 1] = token
  end
end
if #out > 1 then trim_ended(ENDED) end
redis.call('HSET', SES, ARGV[1], ARGV[2])
redis.call('HSET', TIMES, sf(ARGV[1]), ARGV[3])
if DEADLINES then
  -- A single Redis: the session's index entries too (KEYS[9] is its token index); on a
  -- cluster the caller writes them before the script. BEATS gets the session at its first
  -- flush: until then the times hash holds its last heartbeat.
  redis.call('ZADD', DEADLINES, score_of_t(deadline_of(ARGV[3])), LICENSE .. ' ' .. ARGV[1])
  redis.call('SET', KEYS[9], LICENSE)
end
return out
