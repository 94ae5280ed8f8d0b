--[[
  Mark result lines of one shard done, once each: the first mark of a (batch, line) wins,
  so a result delivered twice (after a re-lease) is counted once. Tokens count only for
  lines with a response: a line error (a prompt over the context, say) did not run, so
  its prompt tokens are not the batch's usage.

  KEYS[1]  done bitmap of the batch (bit = 0-based line index)
  KEYS[2]  per-shard done counts of the batch (hash: shard -> lines done)
  KEYS[3]  the batch hash (fields completed, failed, prompt_tokens, completion_tokens,
           prompt_tokens_cached)

  ARGV[1]  shard index
  ARGV[2+5k .. 6+5k]  line index, 1 if the line has a response / 0 if a line error,
                      prompt tokens, completion tokens, prompt tokens served from the
                      engine's prefix cache

  Returns {newly marked lines, lines of the batch done, lines of the shard done,
           newly marked lines with a response, prompt tokens, completion tokens and
           cached prompt tokens of the newly marked lines}; newly marked is -1 (and nothing changes) when the
           batch is already final, so a late result never alters a finished batch.
]]
local status = redis.call("HGET", KEYS[3], "status")
if status == false or status == "completed" or status == "failed" or status == "expired" or status == "cancelled" then
  return {-1, 0, 0, 0, 0, 0, 0}
end
local newly, ok, err, prompt, completion, cached = 0, 0, 0, 0, 0, 0
for i = 2, #ARGV, 5 do
  if redis.call("SETBIT", KEYS[1], ARGV[i], 1) == 0 then
    newly = newly + 1
    if ARGV[i + 1] == "1" then
      ok = ok + 1
      prompt = prompt + tonumber(ARGV[i + 2])
      completion = completion + tonumber(ARGV[i + 3])
      cached = cached + tonumber(ARGV[i + 4])
    else
      err = err + 1
    end
  end
end
local shardDone
if newly > 0 then
  shardDone = redis.call("HINCRBY", KEYS[2], ARGV[1], newly)
  redis.call("HINCRBY", KEYS[3], "completed", ok)
  redis.call("HINCRBY", KEYS[3], "failed", err)
  redis.call("HINCRBY", KEYS[3], "prompt_tokens", prompt)
  redis.call("HINCRBY", KEYS[3], "completion_tokens", completion)
  redis.call("HINCRBY", KEYS[3], "prompt_tokens_cached", cached)
else
  shardDone = tonumber(redis.call("HGET", KEYS[2], ARGV[1]) or "0")
end
local counts = redis.call("HMGET", KEYS[3], "completed", "failed")
local batchDone = tonumber(counts[1] or "0") + tonumber(counts[2] or "0")
return {newly, batchDone, shardDone, ok, prompt, completion, cached}
