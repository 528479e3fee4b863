-- Write-behind flush of coalesced heartbeats on a cluster, for one or more licenses of one
-- slot (a single Redis moves the global sets of the prelude instead). KEYS: the times hash of
-- each license.
-- ARGV: per license, n, then n x (token, deadline T, last_heartbeat T, hardware_hash).
-- Mirrors apply_heartbeat: sessions that ended are skipped; deadline and last heartbeat only
-- move forward; the session's device, if active, gets the later last heartbeat (even when
-- the session ended since: the heartbeat was accepted while it was live).
-- Per license one HMGET and at most one HSET. Returns how many session writes were applied.
local written = 0
local argi = 1
for k = 1, #KEYS do
  local key = KEYS[k]
  local n = tonumber(ARGV[argi])
  argi = argi + 1
  -- Fields to read: every session, then every distinct device.
  local fields, index = {}, {}
  for j = 0, n - 1 do
    local base = argi + j * 4
    for _, field in ipairs({sf(ARGV[base]), af(ARGV[base + 3])}) do
      if index[field] == nil then
        fields[#fields + 1] = field
        index[field] = #fields
      end
    end
  end
  local stored = redis.call('HMGET', key, unpack(fields))
  local current, dirty = {}, {}
  for i = 1, #fields do current[fields[i]] = stored[i] end
  for j = 0, n - 1 do
    local base = argi + j * 4
    local s, a = sf(ARGV[base]), af(ARGV[base + 3])
    local deadline, beat = ARGV[base + 1], ARGV[base + 2]
    local times = current[s]
    if times then
      local next_times = tmax(deadline_of(times), deadline) .. tmax(heartbeat_of(times), beat)
      if next_times ~= times then
        current[s] = next_times
        dirty[s] = true
      end
      written = written + 1
    end
    local state = current[a]
    if state and is_active(state) then
      local next_state = '1' .. tmax(string.sub(state, 2), beat)
      if next_state ~= state then
        current[a] = next_state
        dirty[a] = true
      end
    end
  end
  local updates = {}
  for field, _ in pairs(dirty) do
    updates[#updates + 1] = field
    updates[#updates + 1] = current[field]
  end
  if #updates > 0 then hset_pairs(key, updates) end
  argi = argi + n * 4
end
return written
