--[[
  Move a batch to a new status only if its current status is one of the allowed ones,
  keeping the per-status counts (for /metrics) and the set of active batches in step.

  KEYS[1]  the batch hash
  KEYS[2]  status counts (hash: status -> batches)
  KEYS[3]  active batches (set of ids of batches not in a terminal status)
  KEYS[4]  webhook outbox (sorted set: batch id -> ms its terminal event is due); a batch
           entering a terminal status is added in the same step, so its event survives
           any crash after the move (webhooks/webhook-dispatcher.ts delivers it)

  ARGV[1]  batch id
  ARGV[2]  allowed current statuses, comma-separated
  ARGV[3]  new status
  ARGV[4]  "1" if the new status is terminal
  ARGV[5..]  field, value pairs to set with it (value "" deletes the field)

  Returns 1 when moved, 0 when the current status is not allowed, -1 when no such batch.
]]
local current = redis.call("HGET", KEYS[1], "status")
if not current then return -1 end
local allowed = false
for s in string.gmatch(ARGV[2], "[^,]+") do
  if s == current then allowed = true end
end
if not allowed then return 0 end
redis.call("HSET", KEYS[1], "status", ARGV[3])
for i = 5, #ARGV, 2 do
  if ARGV[i + 1] == "" then
    redis.call("HDEL", KEYS[1], ARGV[i])
  else
    redis.call("HSET", KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
if current ~= ARGV[3] then
  redis.call("HINCRBY", KEYS[2], current, -1)
  redis.call("HINCRBY", KEYS[2], ARGV[3], 1)
end
if ARGV[4] == "1" then
  redis.call("SREM", KEYS[3], ARGV[1])
  local t = redis.call("TIME")
  redis.call("ZADD", KEYS[4], "NX", tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[1])
end
return 1
