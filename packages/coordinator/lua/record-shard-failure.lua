--[[
  Count a failed lease of one shard: consecutive failures for the same reason. A failure
  for another reason starts the count again at 1.

  KEYS[1]  shard failures of the batch (hash: shard -> "<reason>\t<count>")

  ARGV[1]  shard index
  ARGV[2]  reason (e.g. "lease_expired", "worker_lost", "results_not_stored")

  Returns the count of consecutive failures of the shard for this reason, this one included.
]]
local prev = redis.call("HGET", KEYS[1], ARGV[1])
local count = 1
if prev then
  local tab = string.find(prev, "\t", 1, true)
  if tab and string.sub(prev, 1, tab - 1) == ARGV[2] then
    count = tonumber(string.sub(prev, tab + 1)) + 1
  end
end
redis.call("HSET", KEYS[1], ARGV[1], ARGV[2] .. "\t" .. count)
return count
