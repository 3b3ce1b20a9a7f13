"""What the Redis store keeps and the Lua scripts that change it: each money rule is one script, so it
is atomic inside Redis however many processes and hosts share the server.

Every script touches the keys of ONE hash slot: a tenant's (`ps:{<tenant>}:...`) or the global
ones (`ps:{global}:...`), so each also runs on a Redis Cluster. Keys a script reaches that are not in
KEYS (a charge `c:<id>` while paging, a tenant's journal list while trimming) are built from a
prefix of the same slot, which a cluster allows. Scripts never pass Lua numbers to Redis unformatted
(`num`): Lua would print them with 14 digits and lose a float's last ones.

The values the scripts read, written by Python with the helpers at the end:
    a row of a list     `<seq, 15 digits>:<charge id>`: equal scores (the same second) order by seq
    a settlement        `<status now>\\n<status after>\\n<charge JSON as settled>`, made when the charge is
    an idempotency key  `<1 finished|0 in flight> <created> <fingerprint JSON>\\n<reply JSON or nothing>`
    a journal owner     `<started> t<tenant>` or `<started> n` (no tenant)
    a webhook endpoint  `<seq, 15 digits>:<endpoint JSON>` (the seq keeps the endpoints in the order added)
    a queued job        `<seq, 15 digits>:<job JSON>`, scored by its due time: equal times go in the order queued
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import orjson

from sandbox.models import Charge, Entry, Refund, Reply, Saved, json_bytes


@dataclass(frozen=True)
class Script:
    name: str
    text: str
    sha: str = field(init=False)  # what EVALSHA names it by

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.text.encode()).hexdigest())


_NUM = "local function num(x) return string.format('%.17g', x) end\n"
_ID = "local function id_of(row) return string.sub(row, string.find(row, ':', 1, true) + 1) end\n"
# Oldest first: the lowest scores of an order zset go, and with them their entries in `hash`.
_TRIM = """
local function trim(order, hash, limit)
  local over = redis.call('ZCARD', order) - limit
  if over <= 0 then return end
  local gone = redis.call('ZPOPMIN', order, over)
  for i = 1, #gone, 2 do if hash then redis.call('HDEL', hash, gone[i]) end end
end
"""
# mode '' (no key), 'r' (release it) or 's' (it replays `reply` from now on); a key released meanwhile
# (a reset, or pushed out by newer keys) stays released.
_FINISH = """
local function finish_key(keys, order, mode, key, reply)
  if mode == '' then return end
  local held = redis.call('HGET', keys, key)
  if not held then return end
  if mode == 'r' then
    redis.call('HDEL', keys, key)
    redis.call('ZREM', order, key)
  else
    redis.call('HSET', keys, key, '1' .. string.sub(held, 2, string.find(held, '\\n', 1, true)) .. reply)
  end
end
"""
# Global: a tenant leaves the LRU index and the uploaded-rules tally; drops are counted.
_FORGET_TENANT = """
local function forget_rules(ruled, stats, tenant)
  local held = redis.call('ZSCORE', ruled, tenant)
  if held then
    redis.call('ZREM', ruled, tenant)
    redis.call('HINCRBY', stats, 'uploaded', num(-tonumber(held)))
  end
end
local function forget_jobs(qdue, q_prefix, tenant)
  redis.call('UNLINK', q_prefix .. tenant)
  redis.call('ZREM', qdue, tenant)
end
local function note_drops(stats, popped, why, now)
  redis.call('HINCRBY', stats, 'drops', #popped)
  redis.call('HSET', stats, 'last_key', popped[#popped], 'last_at', num(tonumber(now) / 1e6), 'last_why', why)
end
"""
_META = """
local function meta_of(meta, settle)
  local m = redis.call('HMGET', meta, 't', 'clock', 'rv', 'hooks')
  if not m[1] then return false end
  local first = redis.call('ZRANGE', settle, 0, 0, 'WITHSCORES')
  return {m[2], m[3], first[2] or false, m[4] or false}
end
"""

# KEYS lru ruled stats qdue; ARGV tenant now max_tenants why q_prefix. Lists the tenant as the most
# recently used (`now`, microseconds, or just above the newest) and answers the tenants dropped to stay
# within max_tenants (their queued jobs go here; their keys are then deleted by the caller, slot by slot).
# A read's touch is a plain `ZADD XX CH`.
LIST = Script(
    "list",
    _NUM
    + _FORGET_TENANT
    + """
local lru, tenant = KEYS[1], ARGV[1]
local top = redis.call('ZREVRANGE', lru, 0, 0, 'WITHSCORES')
if top[1] == tenant then return {} end
local now = tonumber(ARGV[2])
if top[2] and tonumber(top[2]) >= now then now = tonumber(top[2]) + 1 end
redis.call('ZADD', lru, num(now), tenant)
local popped = {}
local over = redis.call('ZCARD', lru) - tonumber(ARGV[3])
if over > 0 then
  local gone = redis.call('ZPOPMIN', lru, over)
  for i = 1, #gone, 2 do
    popped[#popped + 1] = gone[i]
    forget_rules(KEYS[2], KEYS[3], gone[i])
    forget_jobs(KEYS[4], ARGV[5], gone[i])
  end
  note_drops(KEYS[3], popped, ARGV[4], now)
end
return popped
""",
)

# KEYS lru ruled stats qdue; ARGV tenant uploaded max_total why now q_prefix. Tallies the tenant's uploaded
# rules and, over the limit, drops the least recently used other tenants holding some (and their queued
# jobs); answers those dropped.
LIMIT_RULES = Script(
    "limit_rules",
    _NUM
    + _FORGET_TENANT
    + """
local lru, ruled, stats, tenant = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local uploaded, most = tonumber(ARGV[2]), tonumber(ARGV[3])
local before = tonumber(redis.call('ZSCORE', ruled, tenant) or '0')
if uploaded > 0 then redis.call('ZADD', ruled, num(uploaded), tenant) else redis.call('ZREM', ruled, tenant) end
local total = redis.call('HINCRBY', stats, 'uploaded', num(uploaded - before))
local popped, start = {}, 0
while total > most do
  local batch = redis.call('ZRANGE', lru, start, start + 99)
  if #batch == 0 then break end
  local removed = 0
  for _, other in ipairs(batch) do
    if total <= most then break end
    local held = other ~= tenant and redis.call('ZSCORE', ruled, other)
    if held then
      redis.call('ZREM', lru, other)
      redis.call('ZREM', ruled, other)
      total = redis.call('HINCRBY', stats, 'uploaded', num(-tonumber(held)))
      forget_jobs(KEYS[4], ARGV[6], other)
      popped[#popped + 1] = other
      removed = removed + 1
    end
  end
  start = start + #batch - removed
end
if #popped > 0 then note_drops(stats, popped, ARGV[4], ARGV[5]) end
return popped
""",
)

# KEYS meta settle; ARGV create(1|0). The tenant as {clock, rules version, next settlement, endpoints}
# or nil.
TENANT = Script(
    "tenant",
    _META
    + """
if ARGV[1] == '1' then redis.call('HSETNX', KEYS[1], 't', '1') end
return meta_of(KEYS[1], KEYS[2])
""",
)

# KEYS meta settle; ARGV seconds real_now last. The same arithmetic, in the same order, on the same
# doubles as the memory store, so every engine refuses at exactly the same instant.
ADVANCE = Script(
    "advance",
    _NUM
    + _META
    + """
redis.call('HSETNX', KEYS[1], 't', '1')
local offset = tonumber(redis.call('HGET', KEYS[1], 'clock') or '0')
local seconds = tonumber(ARGV[1])
if tonumber(ARGV[2]) + offset + seconds > tonumber(ARGV[3]) then return false end
redis.call('HSET', KEYS[1], 'clock', num(offset + seconds))
return meta_of(KEYS[1], KEYS[2])
""",
)

# KEYS meta rules; ARGV document uploaded version.
SET_RULES = Script(
    "set_rules",
    """
redis.call('HSETNX', KEYS[1], 't', '1')
redis.call('HSET', KEYS[1], 'rv', ARGV[3], 'up', ARGV[2])
redis.call('SET', KEYS[2], ARGV[1])
return 1
""",
)

# KEYS meta all by_status settle later charge keys korder events;
# ARGV row second status charge_json settle_at settlement key_mode key reply charge_id kept event...
# The charge's events (each `Event.dumps()`) go on the tenant's list as ADD_EVENTS adds them.
ADD_CHARGE = Script(
    "add_charge",
    _FINISH
    + """
if #ARGV > 11 then
  redis.call('RPUSH', KEYS[9], unpack(ARGV, 12, #ARGV))
  redis.call('LTRIM', KEYS[9], '-' .. ARGV[11], -1)
end
redis.call('HSETNX', KEYS[1], 't', '1')
redis.call('SET', KEYS[6], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
if ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
  redis.call('HSET', KEYS[5], ARGV[10], ARGV[6])
end
finish_key(KEYS[7], KEYS[8], ARGV[7], ARGV[8], ARGV[9])
return 1
""",
)

# KEYS meta settle later succeeded pending failed; ARGV now prefix. Every due charge takes its
# settled form (made when it was stored) and moves to its new status's list at the same place.
# Answers the settled charges' JSON, in the order they fell due: only the call that settled one gets it.
SETTLE = Script(
    "settle",
    _ID
    + """
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
if #due == 0 then return {} end
local settled = {}
local lists = {succeeded = KEYS[4], pending = KEYS[5], failed = KEYS[6]}
for _, row in ipairs(due) do
  local id = id_of(row)
  local v = redis.call('HGET', KEYS[3], id)
  if v then
    local a = string.find(v, '\\n', 1, true)
    local b = string.find(v, '\\n', a + 1, true)
    local from, to = string.sub(v, 1, a - 1), string.sub(v, a + 1, b - 1)
    local second = redis.call('ZSCORE', lists[from], row)
    if second then
      redis.call('ZREM', lists[from], row)
      redis.call('ZADD', lists[to], second, row)
    end
    local after = string.sub(v, b + 1)
    redis.call('SET', ARGV[2] .. 'c:' .. id, after)
    redis.call('HINCRBY', KEYS[1], from, -1)
    redis.call('HINCRBY', KEYS[1], to, 1)
    redis.call('HDEL', KEYS[3], id)
    settled[#settled + 1] = after
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
return settled
""",
)

# KEYS meta events; ARGV kept event... Appends the events (each `Event.dumps()`) to the tenant's
# list, oldest first, keeping the newest `kept`; a tenant without data (absent, or dropped) keeps none.
ADD_EVENTS = Script(
    "add_events",
    """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 2, #ARGV, 500 do redis.call('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 499, #ARGV))) end
redis.call('LTRIM', KEYS[2], '-' .. ARGV[1], -1)
return 1
""",
)

# KEYS charge refunds meta later keys korder;
# ARGV expected new_charge refund charge_id settlement key_mode key reply.
# Compare-and-set: 0 when the charge is no longer what `decide` judged (the caller reads it again and
# decides again), 1 once stored. `expected` '' means the charge was absent.
REFUND = Script(
    "refund",
    _FINISH
    + """
local now = redis.call('GET', KEYS[1])
if ARGV[1] == '' then
  if now then return 0 end
elseif now ~= ARGV[1] then
  return 0
end
if redis.call('EXISTS', KEYS[3]) == 0 then return 1 end
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('RPUSH', KEYS[2], ARGV[3])
  redis.call('HINCRBY', KEYS[3], 'refunds', 1)
  if ARGV[5] ~= '' and redis.call('HEXISTS', KEYS[4], ARGV[4]) == 1 then
    redis.call('HSET', KEYS[4], ARGV[4], ARGV[5])
  end
end
finish_key(KEYS[5], KEYS[6], ARGV[6], ARGV[7], ARGV[8])
return 1
""",
)

# KEYS meta keys korder; ARGV key value created ttl limit. nil when claimed, else what the key holds.
CLAIM = Script(
    "claim",
    _NUM
    + _TRIM
    + """
redis.call('HSETNX', KEYS[1], 't', '1')
local found = redis.call('HGET', KEYS[2], ARGV[1])
if found then
  local finished = string.sub(found, 1, 1) == '1'
  local created = tonumber(string.match(found, '^%d (%S+) '))
  if not (finished and tonumber(ARGV[3]) - created >= tonumber(ARGV[4])) then return found end
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], num(redis.call('HINCRBY', KEYS[1], 'kseq', 1)), ARGV[1])
trim(KEYS[3], KEYS[2], tonumber(ARGV[5]))
return false
""",
)

# KEYS keys korder; ARGV key_mode key reply.
SAVE_REPLY = Script("save_reply", _FINISH + "finish_key(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])\nreturn 1\n")

# KEYS meta marks; ARGV marker limit. 1 when newly marked.
MARK = Script(
    "mark",
    _NUM
    + _TRIM
    + """
redis.call('HSETNX', KEYS[1], 't', '1')
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[2], num(redis.call('HINCRBY', KEYS[1], 'mseq', 1)), ARGV[1])
trim(KEYS[2], false, tonumber(ARGV[2]))
return 1
""",
)

# KEYS meta settle. {meta as field/value pairs, next settlement} or nil.
SUMMARY = Script(
    "summary",
    """
local m = redis.call('HGETALL', KEYS[1])
if #m == 0 then return false end
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {m, first[2] or false}
""",
)

# KEYS list; ARGV limit offset prefix. {total, charge JSON...}: O(log n + limit) at any offset.
PAGE = Script(
    "page",
    _ID
    + """
local total = redis.call('ZCARD', KEYS[1])
local out = {total}
local limit, offset = tonumber(ARGV[1]), tonumber(ARGV[2])
if limit <= 0 or offset >= total then return out end
local rows = redis.call('ZREVRANGE', KEYS[1], offset, offset + limit - 1)
local keys = {}
for i, row in ipairs(rows) do keys[i] = ARGV[3] .. 'c:' .. id_of(row) end
for i = 1, #keys, 500 do
  for _, v in ipairs(redis.call('MGET', unpack(keys, i, math.min(i + 499, #keys)))) do out[#out + 1] = v end
end
return out
""",
)

# KEYS: every fixed key of the tenant (its list of all charges third, the set of endpoints with
# attempts last); ARGV prefix. Its charges and refund lists are found by its list of all charges, its
# attempt lists by that set. Blocks Redis for about a microsecond per charge.
DELETE_TENANT = Script(
    "delete_tenant",
    _ID
    + """
local rows = redis.call('ZRANGE', KEYS[3], 0, -1)
local batch = {}
for _, row in ipairs(rows) do
  local id = id_of(row)
  batch[#batch + 1] = ARGV[1] .. 'c:' .. id
  batch[#batch + 1] = ARGV[1] .. 'r:' .. id
  if #batch >= 500 then
    redis.call('UNLINK', unpack(batch))
    batch = {}
  end
end
for _, hook in ipairs(redis.call('SMEMBERS', KEYS[#KEYS])) do
  batch[#batch + 1] = ARGV[1] .. 'att:' .. hook
  if #batch >= 500 then
    redis.call('UNLINK', unpack(batch))
    batch = {}
  end
end
if #batch > 0 then redis.call('UNLINK', unpack(batch)) end
redis.call('UNLINK', unpack(KEYS))
return #rows
""",
)

# The journal: `journal` lists ids newest first, `jbody` maps id -> entry, `jof` id -> owner, each
# tenant's ids are listed newest first in `<jt prefix><tenant>`, and `jtenants` names those lists.
_FORGET_JOURNAL = """
local function forget_journal(journal, jbody, jof, jtenants, jt, tenant)
  local ids = redis.call('LRANGE', jt, 0, -1)
  if #ids == 0 then return end
  local gone = {}
  for _, id in ipairs(ids) do gone[id] = true end
  local all = redis.call('LRANGE', journal, 0, -1)
  redis.call('DEL', journal)
  local kept = {}
  for _, id in ipairs(all) do
    if not gone[id] then
      kept[#kept + 1] = id
      if #kept == 500 then
        redis.call('RPUSH', journal, unpack(kept))
        kept = {}
      end
    end
  end
  if #kept > 0 then redis.call('RPUSH', journal, unpack(kept)) end
  for i = 1, #ids, 500 do
    local part = {unpack(ids, i, math.min(i + 499, #ids))}
    redis.call('HDEL', jbody, unpack(part))
    redis.call('HDEL', jof, unpack(part))
  end
  redis.call('DEL', jt)
  redis.call('SREM', jtenants, tenant)
end
"""

# KEYS journal jbody jof jtenants jt; ARGV tenant ('' and one=0 for every call) jt_prefix one(1|0).
FORGET = Script(
    "forget",
    _FORGET_JOURNAL
    + """
if ARGV[3] == '1' then
  forget_journal(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[1])
  return 1
end
for _, t in ipairs(redis.call('SMEMBERS', KEYS[4])) do redis.call('UNLINK', ARGV[2] .. t) end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
return 1
""",
)

# KEYS lru ruled stats journal jbody jof jtenants jt qdue q; ARGV tenant. The global half of a tenant's
# reset.
RESET_GLOBAL = Script(
    "reset_global",
    _NUM
    + _FORGET_TENANT
    + _FORGET_JOURNAL
    + """
redis.call('ZREM', KEYS[1], ARGV[1])
forget_rules(KEYS[2], KEYS[3], ARGV[1])
forget_journal(KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], ARGV[1])
redis.call('UNLINK', KEYS[10])
redis.call('ZREM', KEYS[9], ARGV[1])
return 1
""",
)

# KEYS journal jbody jof jtenants jt; ARGV id entry owner tenant size jt_prefix has_tenant(1|0).
# The oldest beyond `size` go, from the journal and from their tenant's list (where they are the oldest too).
RECORD = Script(
    "record",
    """
local held = redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
if ARGV[7] == '1' and redis.call('LPUSH', KEYS[5], ARGV[1]) == 1 then
  redis.call('SADD', KEYS[4], ARGV[4])  -- its first entry kept: the tenant joins the set
end
local size = tonumber(ARGV[5])
for _ = size + 1, held do
  local old = redis.call('RPOP', KEYS[1])
  local owner = redis.call('HGET', KEYS[3], old)
  redis.call('HDEL', KEYS[2], old)
  redis.call('HDEL', KEYS[3], old)
  if owner then
    local who = string.sub(owner, string.find(owner, ' ', 1, true) + 1)
    if string.sub(who, 1, 1) == 't' then
      local tenant = string.sub(who, 2)
      local list = ARGV[6] .. tenant
      redis.call('RPOP', list)
      if redis.call('LLEN', list) == 0 then redis.call('SREM', KEYS[4], tenant) end
    end
  end
end
return 1
""",
)

_BODIES = """
local function bodies(jbody, ids)
  local out = {}
  for i = 1, #ids, 500 do
    for _, v in ipairs(redis.call('HMGET', jbody, unpack(ids, i, math.min(i + 499, #ids)))) do out[#out + 1] = v end
  end
  return out
end
"""

# KEYS list jbody; ARGV stop (limit - 1, or -1 for all). Entries newest first.
ENTRIES = Script("entries", _BODIES + "return bodies(KEYS[2], redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1])))\n")

# KEYS journal jbody; ARGV cursor. Entries newer than the cursor's, or nil when it is gone.
ENTRIES_AFTER = Script(
    "entries_after",
    _BODIES
    + """
local n
if ARGV[1] == '' then
  n = redis.call('LLEN', KEYS[1])
else
  n = redis.call('LPOS', KEYS[1], ARGV[1])
  if not n then return false end
end
if n == 0 then return {} end
return bodies(KEYS[2], redis.call('LRANGE', KEYS[1], 0, n - 1))
""",
)

# KEYS journal jof list; ARGV -. {count in list, started of its newest, id of the newest of all}.
JOURNAL_STATS = Script(
    "journal_stats",
    """
local newest = redis.call('LINDEX', KEYS[1], 0)
local mine = redis.call('LINDEX', KEYS[3], 0)
local started = false
if mine then
  local owner = redis.call('HGET', KEYS[2], mine)
  if owner then started = string.sub(owner, 1, string.find(owner, ' ', 1, true) - 1) end
end
return {redis.call('LLEN', KEYS[3]), started, newest}
""",
)

# -- webhooks: endpoints and attempts in the tenant's slot, the queue of jobs in the global one ------
# KEYS meta hooks; ARGV hook_id raw limit. 1 when stored (an endpoint added again keeps its place), 0
# when the tenant holds `limit` already.
ADD_HOOK = Script(
    "add_hook",
    """
redis.call('HSETNX', KEYS[1], 't', '1')
if tonumber(redis.call('HGET', KEYS[1], 'hooks') or '0') >= tonumber(ARGV[3]) then return 0 end
local held = redis.call('HGET', KEYS[2], ARGV[1])
if held then
  redis.call('HSET', KEYS[2], ARGV[1], string.sub(held, 1, 16) .. ARGV[2])
  return 1
end
local seq = redis.call('HINCRBY', KEYS[1], 'hseq', 1)
redis.call('HSET', KEYS[2], ARGV[1], string.format('%015d:', seq) .. ARGV[2])
redis.call('HINCRBY', KEYS[1], 'hooks', 1)
return 1
""",
)

# KEYS meta hooks atts att; ARGV hook_id. 1 when the endpoint was there (it goes, with its attempts).
REMOVE_HOOK = Script(
    "remove_hook",
    """
if redis.call('HDEL', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'hooks', -1)
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('UNLINK', KEYS[4])
return 1
""",
)

# KEYS meta atts att; ARGV hook_id raw kept. Appends the attempt, keeping the newest `kept`; a tenant
# without data (absent, or dropped) keeps none. `atts` names the endpoints with a list, for the tenant's
# deletion.
LOG_ATTEMPT = Script(
    "log_attempt",
    """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('RPUSH', KEYS[3], ARGV[2])
redis.call('LTRIM', KEYS[3], '-' .. ARGV[3], -1)
return 1
""",
)

# KEYS lru qdue q stats; ARGV tenant limit (due job)... Queues jobs for a listed tenant, up to `limit`
# waiting; answers how many were queued. `qdue` holds each tenant's earliest due time.
QUEUE = Script(
    "queue",
    """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local count = math.min(tonumber(ARGV[2]) - redis.call('ZCARD', KEYS[3]), (#ARGV - 2) / 2)
if count <= 0 then return 0 end
local last = redis.call('HINCRBY', KEYS[4], 'qseq', count)
local batch = {}
for i = 1, count do
  batch[#batch + 1] = ARGV[1 + 2 * i]
  batch[#batch + 1] = string.format('%015d:', last - count + i) .. ARGV[2 + 2 * i]
  if #batch >= 1000 or i == count then
    redis.call('ZADD', KEYS[3], unpack(batch))
    batch = {}
  end
end
local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
redis.call('ZADD', KEYS[2], first[2], ARGV[1])
return count
""",
)

# KEYS qdue q; ARGV tenant seconds. The tenant's jobs come `seconds` sooner (its clock moved on): the
# same subtraction, on the same doubles, as the memory store.
SHIFT_JOBS = Script(
    "shift_jobs",
    _NUM
    + """
local jobs = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
if #jobs == 0 then return 0 end
local seconds = tonumber(ARGV[2])
local batch = {}
for i = 1, #jobs, 2 do
  batch[#batch + 1] = num(tonumber(jobs[i + 1]) - seconds)
  batch[#batch + 1] = jobs[i]
  if #batch >= 1000 or i + 1 == #jobs then
    redis.call('ZADD', KEYS[2], unpack(batch))
    batch = {}
  end
end
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
redis.call('ZADD', KEYS[1], first[2], ARGV[1])
return #jobs / 2
""",
)

# KEYS qdue; ARGV now limit q_prefix. Removes and answers up to `limit` jobs due at `now` or before,
# earliest first across tenants, as {tenant, job, tenant, job, ...}: the tenant due first gives its
# jobs up to the next tenant's earliest, then its own earliest is noted again. (A note that is wrong,
# which no write leaves, is mended as it is met.)
TAKE = Script(
    "take",
    """
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local out, taken = {}, 0
while taken < limit do
  local top = redis.call('ZRANGE', KEYS[1], 0, 1, 'WITHSCORES')
  if #top == 0 or tonumber(top[2]) > now then break end
  local bound = ARGV[1]
  if top[4] and tonumber(top[4]) < now then bound = top[4] end
  local q = ARGV[3] .. top[1]
  local jobs = redis.call('ZRANGEBYSCORE', q, '-inf', bound, 'LIMIT', 0, limit - taken)
  for _, job in ipairs(jobs) do
    out[#out + 1] = top[1]
    out[#out + 1] = job
  end
  for i = 1, #jobs, 500 do redis.call('ZREM', q, unpack(jobs, i, math.min(i + 499, #jobs))) end
  taken = taken + #jobs
  local first = redis.call('ZRANGE', q, 0, 0, 'WITHSCORES')
  if first[2] then redis.call('ZADD', KEYS[1], first[2], top[1]) else redis.call('ZREM', KEYS[1], top[1]) end
end
return out
""",
)

SCRIPTS = tuple(value for value in list(globals().values()) if isinstance(value, Script))  # loaded together


# -- values ---------------------------------------------------------------------------------------
dumps = json_bytes  # a lone surrogate (from a \\ud800 escape in a client's JSON) takes plain json


def loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def row(charge: Charge) -> bytes:
    return b"%015d:%s" % (charge.seq, charge.id.encode("utf-8", "surrogatepass"))


def charge_value(c: Charge) -> bytes:
    fields = (c.id, c.seq, c.amount, c.currency, c.description, c.metadata, c.status, c.created, c.amount_refunded)
    return dumps([*fields, c.failure_code, c.scenario, c.settle_at, c.settled_at, c.settle_to, c.settle_code])


def charge_of(raw: bytes) -> Charge:
    return Charge(*loads(raw))


def settlement(charge: Charge) -> bytes:
    """The charge as it will be once settled (as the memory store settles it), and which list it moves to."""
    to = charge.settle_to or "succeeded"
    after = dataclasses.replace(charge, status=to, settled_at=charge.settle_at, settle_at=None)
    if to == "failed":
        after.failure_code = charge.settle_code or "generic_decline"
    return f"{charge.status}\n{to}\n".encode() + charge_value(after)


def sequenced(value: bytes) -> bytes:
    """An endpoint or a job as stored (`<seq>:<JSON>`) -> its JSON."""
    return value[16:]


def refund_value(r: Refund) -> bytes:
    return dumps([r.id, r.charge_id, r.amount, r.reason, r.metadata, r.created, r.status, r.scenario])


def refund_of(raw: bytes) -> Refund:
    return Refund(*loads(raw))


def saved_value(saved: Saved) -> bytes:
    head = f"{1 if saved.reply is not None else 0} {float(saved.created)!r} {json.dumps(saved.fingerprint)}\n"
    return head.encode() + (saved.reply.dumps().encode() if saved.reply is not None else b"")


def saved_of(raw: bytes) -> Saved:
    head, _, reply = raw.partition(b"\n")
    _, created, fingerprint = head.split(b" ", 2)
    return Saved(json.loads(fingerprint), float(created), Reply.loads(reply.decode()) if reply else None)


def entry_value(e: Entry) -> bytes:
    """A header line of JSON (lengths of the bodies included), then the bodies' bytes as they are."""
    request = -1 if e.request_body is None else len(e.request_body)
    head = [e.id, e.tenant, e.method, e.path, e.query, e.status, e.started, e.duration, e.idempotency_key]
    return dumps([*head, e.scenario, request, e.notes()]) + b"\n" + (e.request_body or b"") + e.response_body


def entry_of(raw: bytes) -> Entry:
    head, _, bodies = raw.partition(b"\n")  # JSON has no raw newline: the first ends the header
    id_, tenant, method, path, query, status, started, duration, key, scenario, request, *notes = loads(head)
    body = None if request < 0 else bodies[:request]
    fault, findings = Entry.noted(notes[0] if notes else None)  # entries written by earlier versions have no notes
    return Entry(
        id_, tenant, method, path, query, status, started, duration, key, scenario, body, bodies[max(request, 0) :],
        fault, findings,
    )  # fmt: skip
