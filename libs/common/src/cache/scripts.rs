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

/// Fixed-window counter: INCR KEYS[1], starting its window of ARGV[1] ms at the first
/// increment (and again should the key have lost its TTL); returns the count and the ms left.
pub(super) const INCR_IN_WINDOW: &str = "local n = redis.call('INCR', KEYS[1]) \
     if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end \
     local t = redis.call('PTTL', KEYS[1]) \
     if t < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) t = tonumber(ARGV[1]) end \
     return {n, t}";
