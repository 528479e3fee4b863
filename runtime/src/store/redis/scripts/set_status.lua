-- StoreOp::SetStatus. ARGV: status json, status_reason json, end reason ('' for active), at.
-- A non-active status ends every session with its reason. Returns {'done', ended token...}.
if redis.call('EXISTS', REC) == 0 then return {'not_found'} end
redis.call('HSET', REC, 'status', ARGV[1], 'status_reason', ARGV[2])
local out = {'done'}
if ARGV[3] ~= '' then
  local tokens = redis.call('HKEYS', SES)
  local fields = {}
  for i = 1, #tokens do
    log_end(ENDED, tokens[i], ARGV[3], ARGV[4])
    out[#out + 1] = tokens[i]
    fields[i] = sf(tokens[i])
  end
  if #tokens > 0 then
    redis.call('DEL', SES)
    chunked('HDEL', TIMES, fields)
    trim_ended(ENDED)
  end
end
return out
