-- Load one license atomically. Returns {} when it does not exist, else
-- {record pairs, activation pairs, session pairs, times pairs}.
if redis.call('EXISTS', REC) == 0 then return {} end
return {
  redis.call('HGETALL', REC),
  redis.call('HGETALL', ACT),
  redis.call('HGETALL', SES),
  redis.call('HGETALL', TIMES),
}
