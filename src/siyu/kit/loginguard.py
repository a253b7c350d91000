"""Login throttling: per-account lockout after repeated failures, and a per-address cap.

Failures are counted in the KV store (shared across processes when Redis is configured),
never in the database, so a failed attempt costs no write transaction.
"""

from __future__ import annotations

from siyu.kit.errors import Locked, TooManyRequests
from siyu.kit.kv import KV

IP_LIMIT_PER_MINUTE = 30


async def check(kv: KV, realm: str, username: str, ip: str, *, max_failures: int) -> None:
    """Raise before checking the password if the account is locked or the address is noisy."""
    ip_hit = await kv.hit(f"login-ip:{realm}:{ip}", IP_LIMIT_PER_MINUTE, 60)
    if not ip_hit.allowed:
        raise TooManyRequests(
            "login_rate_limited",
            f"登录尝试过于频繁，请 {ip_hit.retry_after} 秒后再试",
            f"Too many sign-in attempts; try again in {ip_hit.retry_after} seconds",
            headers={"Retry-After": str(ip_hit.retry_after)},
            extra={"retry_after": ip_hit.retry_after},
        )
    key = f"login-fail:{realm}:{username.lower()}"
    if await kv.get_int(key) >= max_failures:
        wait = max(1, await kv.ttl(key))
        minutes = max(1, (wait + 59) // 60)
        raise Locked(
            "login_locked",
            f"密码错误次数过多，账号已临时锁定，请 {minutes} 分钟后再试",
            f"Too many wrong passwords; the account is locked for {minutes} more minute(s)",
            headers={"Retry-After": str(wait)},
            extra={"retry_after": wait},
        )


async def failed(kv: KV, realm: str, username: str, *, lockout_seconds: int) -> int:
    return await kv.incr(f"login-fail:{realm}:{username.lower()}", 1, ttl_seconds=lockout_seconds)


async def succeeded(kv: KV, realm: str, username: str) -> None:
    await kv.delete(f"login-fail:{realm}:{username.lower()}")
