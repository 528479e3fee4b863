-- StoreOp::DeleteLicense. No ARGV. Removes the license's five keys; returns
-- {'done', id json, {session token...}, {hardware hash...}} so the caller can clear the
-- global indexes that name them.
if redis.call('EXISTS', REC) == 0 then return {'not_found'} end
local id = redis.call('HGET', REC, 'id') or ''
local tokens = redis.call('HKEYS', SES)
local hws = redis.call('HKEYS', ACT)
redis.call('DEL', REC, ACT, SES, TIMES, ENDED)
return {'done', id, tokens, hws}
