"""Input and output shapes of the tenants module, per audience."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from siyu.kit.types import Code, Name, Password, Phone, ShortText, Username


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "code": "qingshan-tea", "name": "青山茶社", "owner_username": "qingshan", "owner_password": "s3cret-pass",
        "owner_name": "王店主", "contact_phone": "13800138000",
    }]})

    code: Code = Field(description="Short code used in storefront addresses (/m/<code>)")
    name: Name
    owner_username: Username
    owner_password: Password
    owner_name: Name = "店主"
    contact_name: ShortText | None = None
    contact_phone: Phone | None = None
    timezone: ShortText = "Asia/Shanghai"


class TenantStatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "合同到期未续费"}]})
    reason: ShortText = ""


class TenantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    status: Literal["active", "suspended"]
    suspended_reason: str | None
    timezone: str
    contact_name: str | None
    created_at: datetime


class TenantSettingsOut(BaseModel):
    name: str
    code: str
    timezone: str
    contact_name: str | None
    contact_phone: str | None
    service_phone: str | None = None
    welcome_text: str | None = None


class TenantSettingsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "青山茶社", "service_phone": "400-800-1234"}]})

    name: Name | None = None
    timezone: ShortText | None = None
    contact_name: ShortText | None = None
    contact_phone: Phone | None = None
    service_phone: ShortText | None = Field(default=None, description="Customer service phone shown in the storefront")
    welcome_text: ShortText | None = Field(default=None, description="Text on the storefront home page")


class StoreIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"code": "xihu", "name": "西湖旗舰店", "address": "杭州市西湖区龙井路 1 号", "phone": "0571-88888888"}]})

    code: Code
    name: Name
    address: ShortText | None = None
    phone: ShortText | None = None
    status: Literal["open", "closed"] = "open"


class StoreUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"phone": "0571-88888888", "status": "closed"}]})

    name: Name | None = None
    address: ShortText | None = None
    phone: ShortText | None = None
    status: Literal["open", "closed"] | None = None


class StoreOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    address: str | None
    phone: str | None
    status: str
    created_at: datetime
