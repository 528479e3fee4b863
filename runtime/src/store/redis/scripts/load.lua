-- Load one license atomically. Returns {} when it does not exist, else
-- {record pairs, activation pairs, session pairs, times pairs}; the times are fresh (see
-- fresh_times_pairs in the prelude).
if redis.call('EXISTS', REC) == 0 then return {} end
return {
  redis.call('HGETALL', REC),
  redis.call('HGETALL', ACT),
  redis.call('HGETALL', SES),
  fresh_times_pairs(),
}
