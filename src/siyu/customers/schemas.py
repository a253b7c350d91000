"""Input and output shapes of the customers module, for the storefront and the console."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

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


# -- address book --------------------------------------------------------------------------------

#: The 34 provincial-level divisions of China (GB/T 2260 codes): 23 provinces (台湾省
#: included), 5 autonomous regions, 4 municipalities and 2 special administrative regions.
#: Freight templates name provinces by these codes.
PROVINCES: dict[str, str] = {
    "11": "北京市", "12": "天津市", "13": "河北省", "14": "山西省", "15": "内蒙古自治区",
    "21": "辽宁省", "22": "吉林省", "23": "黑龙江省",
    "31": "上海市", "32": "江苏省", "33": "浙江省", "34": "安徽省", "35": "福建省", "36": "江西省", "37": "山东省",
    "41": "河南省", "42": "湖北省", "43": "湖南省", "44": "广东省", "45": "广西壮族自治区", "46": "海南省",
    "50": "重庆市", "51": "四川省", "52": "贵州省", "53": "云南省", "54": "西藏自治区",
    "61": "陕西省", "62": "甘肃省", "63": "青海省", "64": "宁夏回族自治区", "65": "新疆维吾尔自治区",
    "71": "台湾省", "81": "香港特别行政区", "82": "澳门特别行政区",
}
_PROVINCE_BY_NAME = {name: code for code, name in PROVINCES.items()}
MAX_ADDRESSES = 20


def _province_code(v: object) -> object:
    """Accept the 2-digit code or the full name (``"浙江省"``); normalise to the code."""
    if isinstance(v, str):
        v = v.strip()
        return _PROVINCE_BY_NAME.get(v, v)
    return v


def _known_province(v: str) -> str:
    if v not in PROVINCES:
        raise ValueError("must be the 2-digit code of a provincial-level division, e.g. 33 for 浙江省")
    return v


def _no_breaks(v: str) -> str:
    no_control(v)
    if "\n" in v or "\r" in v or "\t" in v:
        raise ValueError("must not contain line breaks")
    return v


def _blank_none(v: object) -> object:
    return None if isinstance(v, str) and not v.strip() else v


ProvinceCode = Annotated[str, BeforeValidator(_province_code), StringConstraints(min_length=2, max_length=2),
                         AfterValidator(_known_province)]
#: City and district are free short text: full county-level region data is not available
#: offline, so only the province is checked against a list.
RegionText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40), AfterValidator(_no_breaks)]
ReceiverName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50), AfterValidator(_no_breaks)]
Detail = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=200), AfterValidator(_no_breaks)]
PostalCode = Annotated[Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{6}$")] | None,
                       BeforeValidator(_blank_none)]

_ADDRESS_EXAMPLE: dict[str, Any] = {"receiver_name": "王小明", "phone": "13800138000", "province_code": "33", "city": "杭州市",
                    "district": "西湖区", "detail": "龙井路 18 号 3 幢 201", "postal_code": "310013", "is_default": True}


class AddressIn(BaseModel):
    """A new address. ``province_code`` is the 2-digit code (``"33"``) or the full name
    (``"浙江省"``); city and district are short text (not checked against a list)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_ADDRESS_EXAMPLE]})

    receiver_name: ReceiverName
    phone: Phone
    province_code: ProvinceCode
    city: RegionText
    district: RegionText
    detail: Detail
    postal_code: PostalCode = None
    is_default: bool = Field(default=False, description="Make it the default address (the first address always is)")


class AddressUpdate(BaseModel):
    """Only the fields sent change. ``is_default: true`` makes this the default address; a
    customer always keeps one default, so ``false`` on the default changes nothing (choose
    another default instead)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"detail": "龙井路 20 号", "is_default": True}]})

    receiver_name: ReceiverName | None = None
    phone: Phone | None = None
    province_code: ProvinceCode | None = None
    city: RegionText | None = None
    district: RegionText | None = None
    detail: Detail | None = None
    postal_code: PostalCode = None
    is_default: bool | None = None


class AddressOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    receiver_name: str
    phone: str = Field(description="The shopper's own address: the full number")
    province_code: str
    province: str
    city: str
    district: str
    detail: str
    postal_code: str | None
    is_default: bool
    created_at: datetime
    updated_at: datetime


class ProvinceOut(BaseModel):
    code: str
    name: str
