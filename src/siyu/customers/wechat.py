"""WeChat mini-program sign-in (``wx.login`` code → openid / unionid).

The sandbox needs no WeChat account: a code ``alice`` always yields the same openid, and a
code ``alice:family`` also yields a unionid shared by every code ending ``:family``, which is
how tests and demos act out one person using two mini-programs of one brand.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

import httpx

from siyu.kit.errors import BadRequest, DomainError, TooManyRequests


@dataclass(frozen=True, slots=True)
class WxIdentity:
    openid: str
    unionid: str | None
    app_id: str


class MiniProgramAuth(Protocol):
    async def code_to_session(self, code: str) -> WxIdentity: ...


class SandboxMiniProgram:
    app_id = "wx-sandbox"

    async def code_to_session(self, code: str) -> WxIdentity:
        code = code.strip()
        if not code or len(code) > 128:
            raise BadRequest("wechat_code_invalid", "微信登录凭证无效", "The WeChat login code is invalid")
        open_seed, _, union_seed = code.partition(":")
        openid = "sbx_o_" + hashlib.sha256(open_seed.encode()).hexdigest()[:24]
        unionid = "sbx_u_" + hashlib.sha256(union_seed.encode()).hexdigest()[:24] if union_seed else None
        return WxIdentity(openid, unionid, self.app_id)


class WeChatMiniProgram:
    """Calls ``sns/jscode2session``. The session key is never stored or returned."""

    URL = "https://api.weixin.qq.com/sns/jscode2session"

    def __init__(self, app_id: str, secret: str, client: httpx.AsyncClient | None = None) -> None:
        self.app_id = app_id
        self.secret = secret
        self.client = client or httpx.AsyncClient(timeout=5.0)

    async def code_to_session(self, code: str) -> WxIdentity:
        params = {"appid": self.app_id, "secret": self.secret, "js_code": code, "grant_type": "authorization_code"}
        try:
            resp = await self.client.get(self.URL, params=params)
            data = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise DomainError("wechat_unavailable", "微信服务暂时不可用，请稍后再试", "WeChat is unavailable; try again later",
                              status=502) from exc
        errcode = int(data.get("errcode") or 0)
        if errcode in (40029, 40163, 40226):
            raise BadRequest("wechat_code_invalid", "微信登录凭证无效或已使用", "The WeChat login code is invalid or used")
        if errcode == 45011:
            raise TooManyRequests("wechat_rate_limited", "微信登录过于频繁，请稍后再试", "Too many WeChat sign-ins; try again later")
        if errcode or not data.get("openid"):
            raise DomainError("wechat_unavailable", "微信登录失败，请稍后再试", f"WeChat sign-in failed (errcode {errcode})",
                              status=502)
        return WxIdentity(str(data["openid"]), data.get("unionid"), self.app_id)
