-- StoreOp::Deactivate. ARGV: hardware_hash, at.
-- Marks the device inactive and ends its sessions with `admin`. Returns {'done', token...}.
if redis.call('EXISTS', REC) == 0 then return {'not_found'} end
local hw, at = ARGV[1], ARGV[2]
local state = redis.call('HGET', TIMES, af(hw))
if state then
  -- The device keeps its last heartbeat; the global set stops tracking it.
  state = fresh_device_states({hw}, {state})[1]
  redis.call('HSET', TIMES, af(hw), '0' .. string.sub(state, 2))
  if DEVICE_BEATS then redis.call('ZREM', DEVICE_BEATS, LICENSE .. ' ' .. hw) end
end
local out = {'done'}
local sessions = redis.call('HGETALL', SES)
for i = 1, #sessions, 2 do
  local token = sessions[i]
  if cjson.decode(sessions[i + 1]).hardware_hash == hw then
    redis.call('HDEL', SES, token)
    redis.call('HDEL', TIMES, sf(token))
    log_end(ENDED, token, 'admin', at)
    out[#out + 1] = token
  end
end
if #out > 1 then trim_ended(ENDED) end
return out
