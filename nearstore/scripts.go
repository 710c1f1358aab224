// SPDX-License-Identifier: MIT

package nearstore

import (
	"context"
	"crypto/sha1"
	"encoding/hex"

	"github.com/redis/rueidis"
)

// The Lua scripts make each operation one round trip, and a Commit's check
// of the deletion marker atomic with its write. KEYS[1] is the session's key,
// laid out as redisstore's (the prefix and the token, the data as value, the
// expiry as the key's own); KEYS[2] is its deletion marker.

// findScript returns the data and the remaining lifetime in milliseconds
// (-1 if none), or nil for a missing key.
const findScript = `
local v = redis.call('GET', KEYS[1])
if not v then return false end
return {v, redis.call('PTTL', KEYS[1])}`

// commitScript stores ARGV[1] until ARGV[2], a Unix time in milliseconds,
// and returns 1, unless the token is marked deleted: then it returns 0.
const commitScript = `
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return 1`

// deleteScript deletes the session and marks it deleted for as long as it
// had left, keeping a marker that already outlives that.
const deleteScript = `
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 and ttl > redis.call('PTTL', KEYS[2]) then
  redis.call('SET', KEYS[2], '1', 'PX', ttl)
end
redis.call('DEL', KEYS[1])
return 1`

// script is a Lua script run with EVALSHA, sent whole once the server says
// it does not know it (a new or restarted server).
type script struct {
	src, sha string
}

type scripts struct {
	find, commit, delete script
}

func newScripts() scripts {
	return scripts{find: newScript(findScript), commit: newScript(commitScript), delete: newScript(deleteScript)}
}

func newScript(src string) script {
	sum := sha1.Sum([]byte(src))
	return script{src: src, sha: hex.EncodeToString(sum[:])}
}

// exec runs the script on c, a client or a dedicated connection.
func (sc *script) exec(ctx context.Context, c rueidis.CoreClient, keys []string, args ...string) rueidis.RedisResult {
	res := c.Do(ctx, c.B().Evalsha().Sha1(sc.sha).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build())
	if err, ok := rueidis.IsRedisErr(res.Error()); ok && err.IsNoScript() {
		res = c.Do(ctx, c.B().Eval().Script(sc.src).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build())
	}
	return res
}
