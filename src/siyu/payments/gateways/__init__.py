"""Payment gateways: the interface (:mod:`.base`), the sandbox (:mod:`.sandbox`) and WeChat
Pay v3 (:mod:`.wechat`), and how to build one for a tenant from the process runtime.

HTTP clients are injectable through ``runtime.extras``: ``"http_client"`` carries sandbox
notifications to our notify endpoint (default: an ``httpx.AsyncClient`` on
``settings.public_base_url``); ``"wechat_http_client"`` carries calls to WeChat Pay (default:
an ``httpx.AsyncClient`` with a 10 s timeout).
"""

from __future__ import annotations

from typing import Any

import httpx

from siyu.kit.runtime import Runtime
from siyu.payments.gateways.base import (
    CreateRequest,
    Gateway,
    GatewayError,
    GatewayNotConfigured,
    GatewayRefused,
    Notification,
    NotificationRejected,
    PrepayResult,
    RefundRequest,
    RefundState,
    TradeState,
)
from siyu.payments.gateways.sandbox import SandboxGateway, sandbox_key
from siyu.payments.gateways.wechat import WECHAT_API, WeChatCredentials, WeChatPay

__all__ = [
    "CHANNEL_GATEWAY",
    "CreateRequest",
    "Gateway",
    "GatewayError",
    "GatewayNotConfigured",
    "GatewayRefused",
    "Notification",
    "NotificationRejected",
    "PrepayResult",
    "RefundRequest",
    "RefundState",
    "SandboxGateway",
    "TradeState",
    "WeChatCredentials",
    "WeChatPay",
    "notify_url",
    "sandbox_gateway",
    "wechat_gateway",
    "wechat_gateway_for",
]

#: Which gateway serves each channel.
CHANNEL_GATEWAY = {"sandbox": "sandbox", "jsapi": "wechat", "h5": "wechat", "native": "wechat"}


def notify_url(rt: Runtime, gateway: str) -> str:
    """Where ``gateway`` sends its notifications (WeChat Pay forbids a query string here)."""
    return f"{rt.settings.public_base_url}/api/pay/notify/{gateway}"


def sandbox_gateway(rt: Runtime) -> SandboxGateway:
    return SandboxGateway(sandbox_key(rt.secret_key), notify_url=notify_url(rt, "sandbox"))


def wechat_client(rt: Runtime) -> httpx.AsyncClient:
    client = rt.extras.get("wechat_http_client")
    if client is None:
        client = rt.extras.get("_payments_wechat_client")
        if client is None:
            client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))
            rt.extras["_payments_wechat_client"] = client
    assert isinstance(client, httpx.AsyncClient)
    return client


def wechat_gateway(rt: Runtime, config: dict[str, Any], tenant_id: int) -> WeChatPay:
    """The WeChat Pay adapter for one tenant's stored configuration (raises
    :class:`GatewayNotConfigured` when credentials are missing or unusable)."""
    return wechat_gateway_for(rt, WeChatCredentials.from_config(config), tenant_id)


def wechat_gateway_for(rt: Runtime, creds: WeChatCredentials, tenant_id: int) -> WeChatPay:
    base = str(rt.extras.get("wechat_base_url") or WECHAT_API)
    return WeChatPay(creds, wechat_client(rt), notify_url=notify_url(rt, "wechat"), tenant_id=tenant_id, base_url=base)
