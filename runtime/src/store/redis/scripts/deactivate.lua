-- StoreOp::Deactivate. ARGV: hardware_hash, at.
-- Marks the device inactive and ends its sessions with `admin`. Returns {'done', token...}.
if redis.call('EXISTS', REC) == 0 then return {'not_found'} end
local hw, at = ARGV[1], ARGV[2]
local state = redis.call('HGET', ACT_ST, hw)
if state then redis.call('HSET', ACT_ST, hw, '0' .. string.sub(state, 2)) end
local out = {'done'}
local sessions = redis.call('HGETALL', SES)
for i = 1, #sessions, 2 do
  local token = sessions[i]
  if cjson.decode(sessions[i + 1]).hardware_hash == hw then
    redis.call('HDEL', SES, token)
    redis.call('HDEL', SES_T, token)
    log_end(ENDED, token, 'admin', at)
    out[#out + 1] = token
  end
end
trim_ended(ENDED)
return out
