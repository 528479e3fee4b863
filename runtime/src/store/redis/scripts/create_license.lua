-- Create a license record. ARGV: field, json value, field, json value, ...
if redis.call('EXISTS', REC) == 1 then return {'exists'} end
hset_pairs(REC, ARGV)
return {'done'}
