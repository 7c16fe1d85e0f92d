//! What the Redis backend stores besides values, and the Lua it runs (each script atomic on the
//! server).

use std::time::Duration;

/// What an invalidated key holds (followed by a nonce unique to the invalidation).
pub(super) const INVALIDATED: &[u8] = b"\0tt:invalidated:";
/// How long a marker stays when nobody reads the key (the first read replaces it).
pub(super) const INVALIDATED_FOR: Duration = Duration::from_secs(60);

/// Replaces KEYS[1] with ARGV[2] (TTL ARGV[3] ms) only while it still holds ARGV[1].
pub(super) const REPLACE_IF: &str = r"if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return false";

/// Fixed-window counter: adds ARGV[1] to KEYS[1] unless the total would pass ARGV[3] (-1: no
/// limit), starting its window of ARGV[2] ms at the first addition (and again should the key
/// have lost its TTL); returns {1 if added else 0, the count, the ms left}.
pub(super) const ADD_IN_WINDOW: &str = "local n = tonumber(redis.call('GET', KEYS[1]) or '0') \
     local t = redis.call('PTTL', KEYS[1]) \
     local limit = tonumber(ARGV[3]) \
     if limit >= 0 and n + tonumber(ARGV[1]) > limit then \
       if t < 0 then t = tonumber(ARGV[2]) end \
       return {0, n, t} \
     end \
     n = redis.call('INCRBY', KEYS[1], ARGV[1]) \
     if t < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) t = tonumber(ARGV[2]) end \
     return {1, n, t}";

/// Adds ARGV[1] (negative too) to the counter KEYS[1] if it exists, keeping its window;
/// returns the new count, or nothing when the window has ended.
pub(super) const ADJUST: &str = "if redis.call('EXISTS', KEYS[1]) == 1 then \
       return redis.call('INCRBY', KEYS[1], ARGV[1]) \
     end \
     return false";
