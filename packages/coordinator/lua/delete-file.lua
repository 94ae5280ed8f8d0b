--[[
  Delete a file's record unless a batch that is not yet final reads it; the file's object
  and the storage of every batch that read it (shard index, leftover parts) go to the
  trash, from which the caller (or, if it fails, the janitor) deletes them.

  KEYS[1]  the file hash
  KEYS[2]  set of ids of batches that read the file (added by createBatch)
  KEYS[3]  the tenant's files (zset by creation time)
  KEYS[4]  the tenant's files of the file's purpose (zset by creation time)
  KEYS[5]  files with an expiry (zset by expiry time)
  KEYS[6]  the trash (zset: entry -> time trashed; "key:<object key>" or "prefix:<folder/>")

  ARGV[1]  key prefix of batch hashes ("<prefix>:bg:batch:"); the readers' hashes are read
           by name (the coordinator runs on one Redis, not a cluster)
  ARGV[2]  file id
  ARGV[3]  now (ms)

  Returns {1, trash entries...} when deleted, {0, batch id} when a batch not yet final
  reads it, {-1} when there is no such file.
]]
local objectKey = redis.call("HGET", KEYS[1], "key")
if not objectKey then return {-1} end
local readers = redis.call("SMEMBERS", KEYS[2])
for _, b in ipairs(readers) do
  local st = redis.call("HGET", ARGV[1] .. b, "status")
  if st and st ~= "completed" and st ~= "failed" and st ~= "expired" and st ~= "cancelled" then
    return {0, b}
  end
end
redis.call("DEL", KEYS[1], KEYS[2])
redis.call("ZREM", KEYS[3], ARGV[2])
redis.call("ZREM", KEYS[4], ARGV[2])
redis.call("ZREM", KEYS[5], ARGV[2])
local out = {1, "key:" .. objectKey}
redis.call("ZADD", KEYS[6], ARGV[3], "key:" .. objectKey)
for _, b in ipairs(readers) do
  local entry = "prefix:batches/" .. b .. "/"
  redis.call("ZADD", KEYS[6], ARGV[3], entry)
  table.insert(out, entry)
end
return out
