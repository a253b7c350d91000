"""Input and output shapes of the customers module, for the storefront and the console."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from siyu.kit.types import Name, Phone, no_control


class SmsCodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"phone": "13800138000", "purpose": "login"}]})
    phone: Phone
    purpose: Literal["login", "bind"] = "login"


class SmsCodeSent(BaseModel):
    sent: bool = True
    expires_in: int = Field(description="Seconds the code stays valid")
    resend_after: int = Field(description="Seconds before another code may be requested")


class SmsLogin(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"phone": "13800138000", "code": "123456"}]})
    phone: Phone
    code: str = Field(min_length=4, max_length=8, pattern=r"^\d+$")


class WechatLogin(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"code": "0a3Xyz000abc"}]})
    code: Annotated[str, AfterValidator(no_control)] = Field(min_length=1, max_length=128, description="The code from wx.login()")


class BindPhone(SmsLogin):
    pass


class SessionOut(BaseModel):
    token: str = Field(description="Bearer token for the store API (also set as a cookie for H5 pages)")
    csrf_token: str
    customer_id: int
    new_customer: bool


class IdentityOut(BaseModel):
    kind: str
    value: str = Field(description="Phone numbers are masked")


class CustomerMe(BaseModel):
    id: int
    nickname: str | None
    phone: str | None = Field(description="Masked")
    avatar_url: str | None
    created_at: datetime
    identities: list[IdentityOut]


class ProfileUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"nickname": "爱喝茶的小王"}]})
    nickname: Name


class BindResult(BaseModel):
    customer_id: int
    merged_customer_id: int | None = Field(description="Set when an existing customer was merged into this one")
    session: SessionOut | None = Field(default=None, description="A new session when your account was merged into an older one")


class CustomerAdminOut(BaseModel):
    id: int
    nickname: str | None
    phone: str | None = Field(description="Masked unless the caller may see full numbers")
    status: str
    registered_via: str
    created_at: datetime
    last_login_at: datetime | None


class CustomerStatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"status": "blocked"}]})
    status: Literal["active", "blocked"]
