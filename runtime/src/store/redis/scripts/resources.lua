-- Resource pools: every operation of the resource port in one script (redis/resources.rs).
-- Standalone: it does not use prelude.lua. ARGV[1] names the operation. KEYS, all with the
-- hash tag {res} (one cluster slot), in this order:
local SEQ, TYPE, IDENT, HOLDER, AT, CREATED, NAMES, IDS, BYTYPE, FREE, HELD, NFREE, NHELD =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10],
  KEYS[11], KEYS[12], KEYS[13]

local op = ARGV[1]

-- Ids are canonical decimal strings; index members carry them zero-padded to 20 digits so
-- they sort by id within a type or license (types and license keys hold no ':' or ';').
local function pad(id) return string.rep('0', 20 - #id) .. id end
local function member(prefix, id) return prefix .. ':' .. pad(id) end
local function unpad(m, prefix)
  return string.format('%d', tonumber(string.sub(m, #prefix + 2)))
end

-- One resource as six strings: id, type, identifier, holder or '', allocated_at or '',
-- created_at. Nothing when the id is unknown.
local function row(out, id)
  local kind = redis.call('HGET', TYPE, id)
  if not kind then return end
  out[#out + 1] = id
  out[#out + 1] = kind
  out[#out + 1] = redis.call('HGET', IDENT, id)
  out[#out + 1] = redis.call('HGET', HOLDER, id) or ''
  out[#out + 1] = redis.call('HGET', AT, id) or ''
  out[#out + 1] = redis.call('HGET', CREATED, id)
end

local function count(hash, kind, by)
  redis.call('HINCRBY', hash, kind, by)
end

-- Drops a type's counters once it has no resource left.
local function forget_if_empty(kind)
  local f = tonumber(redis.call('HGET', NFREE, kind) or '0')
  local h = tonumber(redis.call('HGET', NHELD, kind) or '0')
  if f <= 0 and h <= 0 then
    redis.call('HDEL', NFREE, kind)
    redis.call('HDEL', NHELD, kind)
  end
end

local function release_one(id, license)
  local kind = redis.call('HGET', TYPE, id)
  redis.call('HDEL', HOLDER, id)
  redis.call('HDEL', AT, id)
  redis.call('ZREM', HELD, member(license, id))
  redis.call('ZADD', FREE, 0, member(kind, id))
  count(NFREE, kind, 1)
  count(NHELD, kind, -1)
end

-- create TYPE AT MAX_TYPES IDENTIFIER... -> 'done', then per identifier '1' (created) or
-- '0' (there already) and its row; or 'too_many_types'.
if op == 'create' then
  local kind, at, max_types = ARGV[2], ARGV[3], tonumber(ARGV[4])
  if redis.call('HEXISTS', NFREE, kind) == 0 and redis.call('HLEN', NFREE) >= max_types then
    return {'too_many_types'}
  end
  local out = {'done'}
  for i = 5, #ARGV do
    local ident = ARGV[i]
    local name = kind .. ':' .. ident
    local id = redis.call('HGET', NAMES, name)
    if id then
      out[#out + 1] = '0'
      row(out, id)
    else
      id = string.format('%d', redis.call('INCR', SEQ))
      redis.call('HSET', TYPE, id, kind)
      redis.call('HSET', IDENT, id, ident)
      redis.call('HSET', CREATED, id, at)
      redis.call('HSET', NAMES, name, id)
      redis.call('ZADD', IDS, id, id)
      redis.call('ZADD', BYTYPE, 0, member(kind, id))
      redis.call('ZADD', FREE, 0, member(kind, id))
      count(NFREE, kind, 1)
      if redis.call('HEXISTS', NHELD, kind) == 0 then redis.call('HSET', NHELD, kind, 0) end
      out[#out + 1] = '1'
      row(out, id)
    end
  end
  return out
end

-- allocate LICENSE AT TYPE_OR_EMPTY ID... -> 'done' and the rows as they are now, or 'unknown' | 'wrong_type' |
-- 'conflict' followed by the ids at fault (then nothing was written).
if op == 'allocate' then
  local license, at, want = ARGV[2], ARGV[3], ARGV[4]
  local unknown, wrong, taken, kinds = {}, {}, {}, {}
  for i = 5, #ARGV do
    local id = ARGV[i]
    local kind = redis.call('HGET', TYPE, id)
    if not kind then
      unknown[#unknown + 1] = id
    else
      kinds[id] = kind
      if want ~= '' and kind ~= want then wrong[#wrong + 1] = id end
      if redis.call('HEXISTS', HOLDER, id) == 1 then taken[#taken + 1] = id end
    end
  end
  if #unknown > 0 then return {'unknown', unpack(unknown)} end
  if #wrong > 0 then return {'wrong_type', unpack(wrong)} end
  if #taken > 0 then return {'conflict', unpack(taken)} end
  for i = 5, #ARGV do
    local id = ARGV[i]
    local kind = kinds[id]
    redis.call('HSET', HOLDER, id, license)
    redis.call('HSET', AT, id, at)
    redis.call('ZREM', FREE, member(kind, id))
    redis.call('ZADD', HELD, 0, member(license, id))
    count(NFREE, kind, -1)
    count(NHELD, kind, 1)
  end
  local out = {'done'}
  for i = 5, #ARGV do row(out, ARGV[i]) end
  return out
end

-- release LICENSE ID... -> 'done' and the rows as they are now, or 'unknown' | 'conflict' followed by the ids at fault.
if op == 'release' then
  local license = ARGV[2]
  local unknown, foreign = {}, {}
  for i = 3, #ARGV do
    local id = ARGV[i]
    if redis.call('HEXISTS', TYPE, id) == 0 then
      unknown[#unknown + 1] = id
    elseif redis.call('HGET', HOLDER, id) ~= license then
      foreign[#foreign + 1] = id
    end
  end
  if #unknown > 0 then return {'unknown', unpack(unknown)} end
  if #foreign > 0 then return {'conflict', unpack(foreign)} end
  local out = {'done'}
  for i = 3, #ARGV do
    release_one(ARGV[i], license)
    row(out, ARGV[i])
  end
  return out
end

-- release_all LICENSE -> 'done' followed by the ids released.
if op == 'release_all' then
  local license = ARGV[2]
  local members = redis.call('ZRANGEBYLEX', HELD, '[' .. license .. ':', '(' .. license .. ';')
  local out = {'done'}
  for _, m in ipairs(members) do
    local id = unpad(m, license)
    release_one(id, license)
    out[#out + 1] = id
  end
  return out
end

-- delete ID -> 'done' and the resource's row as it was, 'unknown' or 'allocated'.
if op == 'delete' then
  local id = ARGV[2]
  local kind = redis.call('HGET', TYPE, id)
  if not kind then return {'unknown'} end
  if redis.call('HEXISTS', HOLDER, id) == 1 then return {'allocated'} end
  local out = {'done'}
  row(out, id)
  redis.call('HDEL', NAMES, kind .. ':' .. redis.call('HGET', IDENT, id))
  redis.call('HDEL', TYPE, id)
  redis.call('HDEL', IDENT, id)
  redis.call('HDEL', CREATED, id)
  redis.call('ZREM', IDS, id)
  redis.call('ZREM', BYTYPE, member(kind, id))
  redis.call('ZREM', FREE, member(kind, id))
  count(NFREE, kind, -1)
  forget_if_empty(kind)
  return out
end

-- rows ID... -> the rows of the ids that exist.
if op == 'rows' then
  local out = {}
  for i = 2, #ARGV do row(out, ARGV[i]) end
  return out
end

-- page INDEX PREFIX AFTER LIMIT -> rows of up to LIMIT resources of the index ('ids',
-- 'bytype', 'free', 'held') with an id above AFTER ('0' for none), in id order.
if op == 'page' then
  local index, prefix, after, limit = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
  local ids = {}
  if index == 'ids' then
    ids = redis.call('ZRANGEBYSCORE', IDS, '(' .. after, '+inf', 'LIMIT', 0, limit)
  else
    local key = ({bytype = BYTYPE, free = FREE, held = HELD})[index]
    if not key then return redis.error_reply('unknown resource index ' .. index) end
    local members = redis.call('ZRANGEBYLEX', key, '(' .. member(prefix, after),
      '(' .. prefix .. ';', 'LIMIT', 0, limit)
    for i, m in ipairs(members) do ids[i] = unpad(m, prefix) end
  end
  local out = {}
  for _, id in ipairs(ids) do row(out, id) end
  return out
end

-- counts TYPE... -> free and allocated of each type.
if op == 'counts' then
  local out = {}
  for i = 2, #ARGV do
    out[#out + 1] = redis.call('HGET', NFREE, ARGV[i]) or '0'
    out[#out + 1] = redis.call('HGET', NHELD, ARGV[i]) or '0'
  end
  return out
end

return redis.error_reply('unknown resource operation ' .. tostring(op))
