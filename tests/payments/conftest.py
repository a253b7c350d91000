"""Fixtures of the payments tests.

Sandbox notifications travel over HTTP exactly as in production, but the HTTP client the
sandbox uses (``runtime.extras["http_client"]``) is routed to the ASGI app; WeChat Pay calls
go to :class:`~tests.payments._helpers.FakeWeChat` on ``httpx.MockTransport``. No test
touches the network.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from siyu.kit import clock
from siyu.kit.runtime import Runtime
from tests.conftest import TenantInfo
from tests.payments._helpers import FakeWeChat, scope, wx_keys

_LOGIN_IP_KEYS = ("login-ip:staff:127.0.0.1", "login-ip:platform:127.0.0.1")


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


@pytest.fixture(autouse=True)
async def _open_login_window(runtime: Runtime) -> None:
    await runtime.kv.delete(*_LOGIN_IP_KEYS)


@pytest.fixture(autouse=True)
async def notify_client(app: Any, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The sandbox's HTTP client, delivering its notifications into the app."""
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    runtime.extras["http_client"] = client
    yield client
    runtime.extras.pop("http_client", None)
    await client.aclose()


@pytest.fixture(autouse=True)
async def _no_network(runtime: Runtime) -> AsyncIterator[None]:
    """Sweepers visit every tenant's payments: a WeChat Pay call made while no test fakes the
    gateway must fail here, not reach api.mch.weixin.qq.com."""
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(503)))
    runtime.extras["wechat_http_client"] = client
    yield
    runtime.extras.pop("wechat_http_client", None)
    await client.aclose()


@pytest.fixture
def drop_notifications(runtime: Runtime) -> Iterator[list[httpx.Request]]:
    """Sandbox notifications are lost on the way (the gateway sees a 503); returns what was tried."""
    tried: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        tried.append(request)
        return httpx.Response(503)

    previous = runtime.extras.get("http_client")
    runtime.extras["http_client"] = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://testserver")
    yield tried
    runtime.extras["http_client"] = previous


@pytest.fixture
async def fake_wechat(runtime: Runtime, _no_network: None) -> AsyncIterator[FakeWeChat]:
    fake = FakeWeChat(wx_keys())
    client = fake.client()
    previous = runtime.extras.get("wechat_http_client")
    runtime.extras["wechat_http_client"] = client
    yield fake
    runtime.extras["wechat_http_client"] = previous
    await client.aclose()


@pytest.fixture
async def shop(tenant_factory: Any) -> TenantInfo:
    return await tenant_factory("支付测试商家")


@pytest.fixture
async def wechat_shop(runtime: Runtime, tenant_factory: Any, fake_wechat: FakeWeChat) -> TenantInfo:
    """A tenant with WeChat Pay enabled: platform certificate and public key both configured."""
    from siyu.payments import service

    t = await tenant_factory("微信支付商家")
    keys = wx_keys()
    conf = keys.config()
    async with runtime.db.uow() as s:
        await service.update_wechat_config(s, scope(t), {
            "enabled": True, "mchid": conf["mchid"], "appid": conf["appid"], "merchant_serial_no": conf["merchant_serial_no"],
            "private_key_pem": conf["private_key_pem"], "apiv3_key": conf["apiv3_key"],
            "platform_certificates": [keys.platform_cert_pem], "public_key_id": keys.pub_key_id,
            "public_key_pem": keys.pub_key_pem, "channels": ["jsapi", "h5", "native"],
        })
    return t
