-- Load one license atomically. Returns {} when it does not exist, else
-- {record pairs, activation pairs, activation state pairs, session pairs, session time pairs}.
if redis.call('EXISTS', REC) == 0 then return {} end
return {
  redis.call('HGETALL', REC),
  redis.call('HGETALL', ACT),
  redis.call('HGETALL', ACT_ST),
  redis.call('HGETALL', SES),
  redis.call('HGETALL', SES_T),
}
