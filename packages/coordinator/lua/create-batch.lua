--[[
  Create a batch as a reader of its input file, only while that file exists: a file
  deleted between the API's lookup and this call is not read by a batch created after
  its deletion (deleteFile checks the same readers set).

  KEYS[1]  the input file's hash
  KEYS[2]  the input file's readers (set of batch ids)
  KEYS[3]  the batch hash
  KEYS[4]  the tenant's batches (zset by creation time)
  KEYS[5]  active batches (set)
  KEYS[6]  status counts (hash: status -> batches)

  ARGV[1]  batch id
  ARGV[2]  created at (ms)
  ARGV[3]  status
  ARGV[4..]  field, value pairs of the batch hash

  Returns 1 when created, 0 when the input file no longer exists.
]]
if redis.call("EXISTS", KEYS[1]) == 0 then return 0 end
redis.call("HSET", KEYS[3], "status", ARGV[3], unpack(ARGV, 4))
redis.call("ZADD", KEYS[4], ARGV[2], ARGV[1])
redis.call("SADD", KEYS[5], ARGV[1])
redis.call("SADD", KEYS[2], ARGV[1])
redis.call("HINCRBY", KEYS[6], ARGV[3], 1)
return 1
