-- StoreOp::UpdateLicense. ARGV: id json, key json, then field, json value pairs of the whole
-- new record. The stored id and key must match; the record is replaced as a whole.
if redis.call('EXISTS', REC) == 0 then return {'not_found'} end
if redis.call('HGET', REC, 'id') ~= ARGV[1] or redis.call('HGET', REC, 'key') ~= ARGV[2] then
  return {'mismatch'}
end
redis.call('DEL', REC)
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
hset_pairs(REC, fields)
return {'done'}
