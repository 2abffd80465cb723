"""The rule every script that creates or rotates tokens keeps: a change in Redis that the
caller was told failed never takes effect afterwards.

A caller is told "failed" (503) when the Redis client gives up on the reply: its socket
timeout (REDIS_TIMEOUT_SECONDS, read here from the client itself, so the two cannot
drift apart) after the command was sent. A command can outlive that: written into the
socket of a paused or overloaded Redis, it runs when Redis gets to it. Run then, a login
would leave a login nobody holds, and a refresh would leave the browser's refresh token
"already rotated" and its session deleted: a logout the user never asked for. So such a
script carries a deadline and does nothing once it has passed:

    deadline = sent + timeout - margin        (on Redis's clock, see below)

`margin` (REPLY_MARGIN of the timeout) bounds what may separate the script's look at the
clock from its reply being read here: the script's own run (microseconds), the reply's way
back (loopback or a LAN: well under a millisecond) and this event loop's lag under load
(tens of milliseconds at worst, measured by tests/faults). A reply held up longer than the
margin, by a pause of Redis or the network at exactly that moment, is the one way left for
a change to land after its 503.

Redis checks the deadline on its own clock (the script calls TIME), which need not be
ours: every guarded script returns the TIME it read, and `RedisClock` keeps a lower bound
of Redis's clock minus ours from the last reply (the TIME was read between our send and our
receive, so `redis_time - received` can only underestimate the offset). A deadline made
with an offset that is too low falls early, never late: the failure mode is a command
refused as late that would have been in time, which the store retries once with a new
deadline, then answers 503.

Scripts that only end sessions carry no deadline: each says, next to it, why running late
is harmless.
"""

import time

from redis.asyncio import Redis

# Of the client's timeout: with the default 1 s, a command that reaches Redis more than
# 0.75 s after it was sent is refused (a healthy Redis answers in under a millisecond).
REPLY_MARGIN = 0.25


class RedisClock:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.timeout = float(redis.connection_pool.connection_kwargs["socket_timeout"])
        self.offset: float | None = None  # Redis's clock minus ours, never more than the truth

    async def deadline(self) -> float:
        """The deadline, on Redis's clock, of a command sent now."""
        if self.offset is None:  # the first guarded call of this process: one TIME first
            redis_seconds, redis_micros = await self.redis.time()
            self.observe(redis_seconds, redis_micros)
        assert self.offset is not None
        return time.time() + self.timeout * (1 - REPLY_MARGIN) + self.offset

    def observe(self, redis_seconds: int | str, redis_micros: int | str) -> None:
        """Redis's TIME, read during a call whose reply has just arrived."""
        self.offset = int(redis_seconds) + int(redis_micros) / 1_000_000 - time.time()
