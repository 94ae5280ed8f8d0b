--[[
  Claim webhook events that are due: each one returned is pushed claimMs into the
  future, so no other replica takes it meanwhile; one whose deliverer died (a crash,
  a restart) comes due again when the claim runs out.

  KEYS[1]  webhook outbox (sorted set: batch id -> ms its event is due)
  ARGV[1]  now (ms)
  ARGV[2]  claim duration (ms)
  ARGV[3]  most events to claim

  Returns the claimed batch ids (an empty list when none is due).
]]
local due = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "LIMIT", 0, tonumber(ARGV[3]))
local until_ms = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, id in ipairs(due) do
  redis.call("ZADD", KEYS[1], "XX", until_ms, id)
end
return due
