"""Redis side of comments: thread and count caches, edit-token records, limits and dedup.

| key | type | holds |
| --- | --- | --- |
| ov:thread:SITE|PATH | string | build id, newline, JSON: the thread as last read from SQL |
| ov:tgen:SITE|PATH | string | a random token, replaced whenever the listener drops the thread |
| ov:cvotes:SITE|PATH | string | a random token, replaced on every vote on the page's comments |
| ov:cvoters:SITE|PATH | set | visitor hashes that voted on the page's comments, and `-` |
| ov:ccount:SITE|PATH | string | the page's approved-comment count; expires |
| ov:ctok:ID | hash | a new comment's edit-token hash, page and author, for the edit window |
| ov:rl:comment:SITE:KIND:HASH | string | comments posted in the current rate window |
| ov:dup:SITE|PATH|VISITOR|SHA | string | the same body from the same visitor on the same page |
| ov:bansv:SITE | string | the site's ban version: a random token, replaced on every ban change |

The thread and vote-token keys expire; the listener drops a page's thread on every change of
its comments (and a reader builds it again), a vote replaces the page's vote token: a reader
holding a prepared thread (services/thread_view.py) checks both, a few bytes, per read.

A reader that builds the thread from SQL caches it only if the page's thread generation is
still the one it saw before reading SQL (`CACHE_THREAD_SCRIPT`): otherwise a change stored
during its read, whose drop came before the reader's write, would leave the older thread
cached for an hour.

Each web worker keeps a copy of a site's bans (services/ban_list.py) with the ban version it
loaded it under; `SUBMIT_SCRIPT` compares that version with the site's before it queues a
comment, so a worker never accepts a comment against an outdated copy.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from appliance.storage.counter_store import PREFIX, comment_target, page_member

THREAD_TTL_S = 3600
COUNT_TTL_S = 86400
BUILD_ID_LENGTH = 16  # hex characters


def thread_key(site: str, path: str) -> str:
    return f"ov:thread:{site}|{path}"


def generation_key(site: str, path: str) -> str:
    return f"ov:tgen:{site}|{path}"


def drop_thread(pipe: Any, site: str, path: str) -> None:
    """Queue on `pipe`: the page's cached thread out, and a new thread generation, so a
    reader still building the thread from an older SQL read does not cache it."""
    pipe.delete(thread_key(site, path))
    pipe.set(generation_key(site, path), secrets.token_hex(8), ex=THREAD_TTL_S)


# A thread built from SQL into the cache, unless the thread was dropped since the reader read
# the generation (before its SQL read). KEYS: thread key, generation key.
# ARGV: the generation the reader saw ("" for none), the encoded thread, ttl_s. Returns 1 if
# cached.
CACHE_THREAD_SCRIPT = """
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""


def count_key(site: str, path: str) -> str:
    return f"ov:ccount:{site}|{path}"


def token_key(comment_id: str) -> str:
    return f"ov:ctok:{comment_id}"


def rate_key(site: str, kind: str, value: str) -> str:
    return f"ov:rl:comment:{site}:{kind}:{value}"


def duplicate_key(site: str, path: str, visitor: str, body_sha: str) -> str:
    return f"ov:dup:{site}|{path}|{visitor}|{body_sha}"


def bans_version_key(site: str) -> str:
    return f"ov:bansv:{site}"


def new_bans_version() -> str:
    """Random, never a counter: a Redis that lost the key (flushed, replaced) must never hand
    out a version some worker already holds with an older copy of the bans."""
    return secrets.token_hex(8)


def bans_changed(client: Any, site: str) -> None:
    """Replace the site's ban version: every worker's copy of its bans is outdated. Call it
    after the change is committed to SQL (a worker that reads the new version reads SQL after
    it), and with any client, or a pipeline that is executed."""
    client.set(bans_version_key(site), new_bans_version())


# A new comment from the web, in one step: check that the worker's copy of the site's bans is
# current (else nothing happens: the worker reloads them and checks the comment again), charge
# the rate limits (every key, then refuse if any is over), refuse a duplicate, record the edit
# token, queue the comment for the listener.
# KEYS: rate keys (ARGV[1] of them: visitor, then network), duplicate key, token key, stream,
#       the site's ban version key.
# ARGV: rate key count, limit, window_s, duplicate_ttl_s, token_ttl_s, token_hash, site,
#       path, stream maxlen (approximate), event JSON, the ban version the worker's copy was
#       loaded under ("*": a copy loaded after this request began; no check).
# Returns {'queued', 0}, {'rate', retry_after_s}, {'duplicate', 0} or {'bans', 0} (the copy is
# outdated, or the version key is missing).
SUBMIT_SCRIPT = """
local n, limit, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if ARGV[11] ~= '*' and redis.call('GET', KEYS[n + 4]) ~= ARGV[11] then return {'bans', 0} end
local retry = nil
for i = 1, n do
  local count = redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], window, 'NX')
  if count > limit and not retry then
    retry = math.max(redis.call('TTL', KEYS[i]), 1)
  end
end
if retry then return {'rate', retry} end
if not redis.call('SET', KEYS[n + 1], '1', 'NX', 'EX', ARGV[4]) then return {'duplicate', 0} end
redis.call('HSET', KEYS[n + 2], 'token_hash', ARGV[6], 'site', ARGV[7], 'path', ARGV[8])
redis.call('EXPIRE', KEYS[n + 2], ARGV[5])
redis.call('XADD', KEYS[n + 3], 'MAXLEN', '~', ARGV[9], '*', 'kind', 'comment', 'body', ARGV[10])
return {'queued', 0}
"""


# An author's delete, in one step: mark the comment's edit-token record (while it lasts) so that
# an edit that follows is refused at once, and queue the delete for the listener.
# KEYS: token key, stream. ARGV: event JSON. Returns the stream entry's id.
DELETE_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'deleted', '1') end
return redis.call('XADD', KEYS[2], '*', 'kind', 'comment_delete', 'body', ARGV[1])
"""


# What a reader holding a prepared thread checks before using it, in one step: the cached
# thread's build id, the page's vote token, and (for a named reader) whether they voted there.
# KEYS: thread key, vote token key, voters key. ARGV: build id length, reader's visitor hash or
# "". Returns {build id or "", vote token or "", voters set exists (0/1), reader voted (0/1)}.
THREAD_STATE_SCRIPT = """
local out = {redis.call('GETRANGE', KEYS[1], 0, ARGV[1] - 1), redis.call('GET', KEYS[2]) or '',
             0, 0}
if ARGV[2] ~= '' then
  out[3] = redis.call('EXISTS', KEYS[3])
  out[4] = redis.call('SISMEMBER', KEYS[3], ARGV[2])
end
return out
"""


def votes_version_key(site: str, path: str) -> str:
    return f"ov:cvotes:{site}|{path}"


def voters_key(site: str, path: str) -> str:
    return f"ov:cvoters:{site}|{path}"


VOTERS_SENTINEL = "-"  # never a visitor hash: makes an empty voters set exist

# A voter into the page's voters set, if the set exists; one that does not is built from the
# votes themselves by the next reader who needs it (CommentService._rebuild_voters).
# KEYS: voters key. ARGV: visitor hash, ttl_s.
ADD_VOTER_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('SADD', KEYS[1], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


def vote_state_key(site: str, comment_id: str) -> str:
    """Where the vote script keeps a comment's votes by visitor (`vote|VISITOR` -> choice)."""
    return f"{PREFIX}vs:{page_member(site, comment_target(comment_id))}"


def new_build_id() -> str:
    return secrets.token_hex(BUILD_ID_LENGTH // 2)


def new_votes_version() -> str:
    """A fresh random token, never a counter: a counter that expired and started again could
    repeat a value a reader still holds, and the reader would keep stale votes."""
    return secrets.token_hex(8)


def encode_thread(entries: list[dict[str, Any]], build_id: str) -> str:
    """The cached thread: its build id first, so a reader that holds this build already can
    tell with a `GETRANGE` of a few bytes instead of fetching and decoding the whole thread."""
    return build_id + "\n" + json.dumps(entries, separators=(",", ":"))


def decode_thread(raw: str) -> tuple[str, list[dict[str, Any]]]:
    """(build id, entries); the build id is "" for a value without one."""
    if raw.startswith("["):  # cached by a version before build ids
        return "", json.loads(raw)
    build_id, _, body = raw.partition("\n")
    return build_id, json.loads(body)


# A visitor's votes on comments, one character each ("u", "d", or "-" for none), read where the
# vote script keeps them: field `vote|VISITOR` of the comment's per-visitor state hash
# (`vs:SITE|~c/ID`, see counter_store). One script, so a thread of hundreds of comments costs
# one reply to parse rather than one per comment.
# ARGV: state key prefix (`ov:{c}:vs:SITE|~c/`), field, comment ids...
MY_VOTES_SCRIPT = """
local prefix, field = ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV do
  local choice = redis.call('HGET', prefix .. ARGV[i], field)
  out[#out + 1] = choice == 'up' and 'u' or (choice == 'down' and 'd' or '-')
end
return table.concat(out)
"""
_VOTE_CHOICES = {"u": "up", "d": "down"}


def my_votes_args(site: str, visitor: str, comment_ids: list[str]) -> list[str]:
    return [vote_state_key(site, ""), f"vote|{visitor}", *comment_ids]


def parse_my_votes(comment_ids: list[str], reply: str | bytes) -> dict[str, str]:
    text = reply.decode() if isinstance(reply, bytes) else reply
    return {comment_id: _VOTE_CHOICES[mark] for comment_id, mark in zip(comment_ids, text,
                                                                          strict=True)
            if mark in _VOTE_CHOICES}
