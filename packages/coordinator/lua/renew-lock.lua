--[[
  Extend a lock's time to live only if this owner holds it.

  KEYS[1]  the lock key
  ARGV[1]  owner
  ARGV[2]  new time to live, milliseconds

  Returns 1 when renewed, 0 when another owner (or none) held it.
]]
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0
