"""pyasync_common - what tests/servers/tornado_app.py and aiohttp_app.py
share (tests/integration/pyasync.sh), and uvicorn_app.py uses too
(statements, Rendezvous, until): the sqlite3 statements, the executor's
connections, and the waits that put requests in flight together on one
event loop whatever the machine's load.

The loop's connection is opened once per process, before serving (opening
one runs no statement); each executor thread opens its own
(check_same_thread: the sqlite3 module's rule). All waits run on the
running asyncio loop (Tornado 6 runs on asyncio).
"""
import asyncio
import os
import sqlite3
import threading

DB = os.environ.get("PYASYNC_APP_DB", "")
_loop_con = None
_local = threading.local()
SLEEPING = [0]  # /slow requests of this process now waiting or sleeping


def statements(con):
    """The author ids, then each author by id: 4 statements (an N+1 of 3:
    one cached statement run again after sqlite3_reset)."""
    ids = [r[0] for r in con.execute("SELECT id FROM authors ORDER BY id").fetchall()]
    names = [con.execute("SELECT name FROM authors WHERE id = ?", (i,)).fetchone()[0] for i in ids]
    return {"authors": names}


def open_loop_connection():
    """Opens the loop's connection: once per process, before serving."""
    global _loop_con
    _loop_con = sqlite3.connect(DB, timeout=10)


def loop_statements():
    """The 4 statements on the calling (the loop's) thread, blocking it."""
    return statements(_loop_con)


def pool_statements():
    """The 4 statements on an executor thread, with its own connection."""
    con = getattr(_local, "con", None)
    if con is None:
        con = sqlite3.connect(DB, timeout=10)
        _local.con = con
    return statements(con)


async def in_pool():
    """pool_statements by run_in_executor on the loop's default executor."""
    return await asyncio.get_running_loop().run_in_executor(None, pool_statements)


class Rendezvous:
    """Releases its waiters n at a time, once n are waiting."""

    def __init__(self, n):
        self.n = n
        self.waiting = []

    async def wait(self, timeout):
        fut = asyncio.get_running_loop().create_future()
        self.waiting.append(fut)
        if len(self.waiting) >= self.n:
            group, self.waiting = self.waiting[:self.n], self.waiting[self.n:]
            for f in group:
                if not f.done():
                    f.set_result(None)
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
        except asyncio.TimeoutError:
            if fut in self.waiting:
                self.waiting.remove(fut)
            raise


ARRIVED = Rendezvous(2)
RAN = Rendezvous(2)


async def until(cond, timeout=10.0):
    """Polls cond on the loop every 10 ms; False when timeout passes first."""
    for _ in range(int(timeout * 100)):
        if cond():
            return True
        await asyncio.sleep(0.01)
    return cond()


async def slow(ms, n):
    """Waits until n /slow requests of this process have arrived, then
    sleeps ms on the loop (asyncio.sleep). False (answer 504) when the
    others do not come within 10 s."""
    SLEEPING[0] += 1
    try:
        if not await until(lambda: SLEEPING[0] >= n):
            return False
        await asyncio.sleep(ms / 1000.0)
        return True
    finally:
        SLEEPING[0] -= 1


async def pair():
    """Waits for a second /sql/pair, runs the 4 statements on the loop,
    waits until the partner ran its own: both requests are in flight while
    the statements run. None (504) when no partner comes within 10 s."""
    try:
        await ARRIVED.wait(10)
        out = loop_statements()
        await RAN.wait(10)
    except asyncio.TimeoutError:
        return None
    return out


async def beside(n):
    """Waits until n /slow requests sleep, then runs the 4 statements on
    the loop. None (504) when they do not come within 10 s."""
    if not await until(lambda: SLEEPING[0] >= n):
        return None
    return loop_statements()
