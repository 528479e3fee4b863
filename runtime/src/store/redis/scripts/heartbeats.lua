-- Write-behind flush of coalesced heartbeats for one or more licenses (all in one slot on a
-- cluster). KEYS: per license, its session-times hash and activation-state hash.
-- ARGV: per license, n, then n x (token, deadline T, last_heartbeat T, hardware_hash).
-- Mirrors apply_heartbeat: sessions that ended are skipped; deadline and last heartbeat only
-- move forward; the session's active device gets the later last heartbeat.
-- Returns how many session writes were applied.
local written = 0
local argi = 1
for k = 1, #KEYS, 2 do
  local ses_t, act_st = KEYS[k], KEYS[k + 1]
  local n = tonumber(ARGV[argi])
  argi = argi + 1
  local tokens = {}
  for j = 1, n do tokens[j] = ARGV[argi + (j - 1) * 4] end
  local stored = redis.call('HMGET', ses_t, unpack(tokens))
  local times, dirty = {}, {}
  local devices, device_list = {}, {}
  for j = 1, n do
    local base = argi + (j - 1) * 4
    local token, deadline, beat, hw = ARGV[base], ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
    local current = times[token]
    if current == nil then current = stored[j] end
    if current then
      local next_times = tmax(deadline_of(current), deadline) .. tmax(heartbeat_of(current), beat)
      if next_times ~= current then
        dirty[token] = true
        times[token] = next_times
      else
        times[token] = current
      end
      if devices[hw] == nil then
        devices[hw] = beat
        device_list[#device_list + 1] = hw
      else
        devices[hw] = tmax(devices[hw], beat)
      end
      written = written + 1
    else
      times[token] = false
    end
  end
  local updates = {}
  for token, _ in pairs(dirty) do
    updates[#updates + 1] = token
    updates[#updates + 1] = times[token]
  end
  if #updates > 0 then hset_pairs(ses_t, updates) end
  if #device_list > 0 then
    local states = redis.call('HMGET', act_st, unpack(device_list))
    local device_updates = {}
    for j = 1, #device_list do
      local state = states[j]
      if state and is_active(state) then
        local beat = tmax(string.sub(state, 2), devices[device_list[j]])
        if beat ~= string.sub(state, 2) then
          device_updates[#device_updates + 1] = device_list[j]
          device_updates[#device_updates + 1] = '1' .. beat
        end
      end
    end
    if #device_updates > 0 then hset_pairs(act_st, device_updates) end
  end
  argi = argi + n * 4
end
return written
