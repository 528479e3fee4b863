-- StoreOp::Activate. ARGV: hardware_hash, activation json, max_devices, max_activations, at.
-- Mirrors apply_to_snapshot: an active device is returned as is; else the device limit, then
-- the lifetime activation limit (0 = unlimited) is checked; a new activation replaces an
-- inactive one of the same device and counts one activation.
if redis.call('EXISTS', REC) == 0 then return {'not_found'} end
local hw, at = ARGV[1], ARGV[5]
local state = redis.call('HGET', TIMES, af(hw))
if state and is_active(state) then
  return {'existing', redis.call('HGET', ACT, hw) or '', fresh_device_states({hw}, {state})[1]}
end
local active = 0
local times = redis.call('HGETALL', TIMES)
for i = 1, #times, 2 do
  if string.sub(times[i], 1, 2) == 'a:' and is_active(times[i + 1]) then active = active + 1 end
end
if active >= tonumber(ARGV[3]) then return {'limit', 'devices'} end
local max_activations = tonumber(ARGV[4])
local used = tonumber(redis.call('HGET', REC, 'activations_used') or '0')
if max_activations > 0 and used >= max_activations then return {'limit', 'activations'} end
redis.call('HINCRBY', REC, 'activations_used', 1)
redis.call('HSET', ACT, hw, ARGV[2])
redis.call('HSET', TIMES, af(hw), '1' .. at)
-- A heartbeat flushed after an earlier deactivation may have left the device an entry.
if DEVICE_BEATS then redis.call('ZREM', DEVICE_BEATS, LICENSE .. ' ' .. hw) end
return {'new'}
