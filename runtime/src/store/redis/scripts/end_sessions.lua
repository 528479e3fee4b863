-- StoreOp::EndSessions. ARGV: at, confirm_deadline ('1' or '0'), then (token, reason) pairs.
-- With confirm_deadline a session whose stored deadline is after `at` is kept (another node
-- kept it alive). Returns {'done', {ended token...}, {alive token, deadline T...}}.
if redis.call('EXISTS', REC) == 0 then return {'not_found'} end
local at, confirm = ARGV[1], ARGV[2] == '1'
local ended, alive = {}, {}
for i = 3, #ARGV, 2 do
  local token = ARGV[i]
  local times = redis.call('HGET', TIMES, sf(token))
  if times and confirm then times = fresh_session_times({token}, {times})[1] end
  if times then
    local deadline = deadline_of(times)
    if confirm and tcmp(deadline, at) > 0 then
      alive[#alive + 1] = token
      alive[#alive + 1] = deadline
    else
      redis.call('HDEL', SES, token)
      redis.call('HDEL', TIMES, sf(token))
      log_end(ENDED, token, ARGV[i + 1], at)
      ended[#ended + 1] = token
    end
  end
end
if #ended > 0 then trim_ended(ENDED) end
return {'done', ended, alive}
