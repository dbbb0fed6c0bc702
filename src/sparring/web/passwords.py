"""Password hashing with Argon2id: RFC 9106's memory and time costs, one lane, one hash at a time.

Argon2 is slow and memory-hard on purpose. With its default four lanes every
login takes all cores for a moment, so a burst of logins (a campaign's start)
stalls every other request. One lane and one dedicated thread bound logins to
one core and keep them off the threads that serve pages; the cost per guess
for an attacker is unchanged. The queue in front of that thread is bounded:
when it is full a login is answered "busy" at once instead of waiting behind
a flood, so a real login is refused quickly or served quickly, never starved.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=1)
_ONE_AT_A_TIME = threading.Lock()
_HASHING_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="argon2")
_WAITING_LOCK = threading.Lock()
_waiting = 0  # verifications queued for or running on the hashing thread, in this process
# Verifying against this when the username is unknown makes both failures take the same time.


@cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so a miss costs a hash too; made on first use, not import."""
    return _HASHER.hash("not a password of anyone")


MIN_PASSWORD_CHARS = 8


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"password: expected at least {MIN_PASSWORD_CHARS} characters")
    with _ONE_AT_A_TIME:
        return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        with _ONE_AT_A_TIME:
            return _HASHER.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


class HashingBusy(Exception):
    """The hashing queue is full; the login should be retried in a moment."""


async def verify_password_off_loop(password_hash: str | None, password: str, max_waiting: int = 32) -> bool:
    """``verify_password`` on the hashing thread: a queue of logins never holds up page requests.

    Raises ``HashingBusy`` without hashing when ``max_waiting`` verifications are already queued.
    """
    global _waiting
    with _WAITING_LOCK:
        if _waiting >= max_waiting:
            raise HashingBusy
        _waiting += 1
    try:
        return await asyncio.get_running_loop().run_in_executor(_HASHING_THREAD, _verify, password_hash, password)
    finally:
        with _WAITING_LOCK:
            _waiting -= 1


def _verify(password_hash: str | None, password: str) -> bool:
    return verify_password(password_hash, password)  # looked up at call time, so tests can count hashes
