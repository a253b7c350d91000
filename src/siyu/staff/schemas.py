"""Input and output shapes of the staff module."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from siyu.kit.types import Code, Name, ObjectId, Password, Phone, ShortText, Username


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"username": "demo", "password": "demo-pass-2026"}]})
    username: Username
    password: str = Field(min_length=1, max_length=128)


class LoginOut(BaseModel):
    token: str = Field(description="Session token; also set as an HttpOnly cookie")
    csrf_token: str = Field(description="Send as X-CSRF-Token on unsafe requests made with the cookie")
    staff_id: int
    tenant_id: int
    name: str


class MeOut(BaseModel):
    staff_id: int | None
    name: str
    tenant_id: int
    tenant_code: str
    role: str
    permissions: list[str]
    via: Literal["session", "token"]


class StaffCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "username": "li.guide", "name": "李导购", "password": "guide-pass-2026", "role_id": 6, "phone": "13900139000", "store_id": 1,
    }]})

    username: Username
    name: Name
    password: Password
    role_id: ObjectId
    phone: Phone | None = None
    email: EmailStr | None = None
    store_id: ObjectId | None = None


class StaffUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "李导购", "role_id": 6}]})

    name: Name | None = None
    role_id: ObjectId | None = None
    phone: Phone | None = None
    email: EmailStr | None = None
    store_id: ObjectId | None = None
    status: Literal["active", "disabled"] | None = None


class PasswordReset(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"password": "new-pass-2026"}]})
    password: Password


class StaffOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    name: str
    phone: str | None = Field(description="Masked, e.g. 139****9000")
    email: str | None
    role_id: int
    store_id: int | None
    status: str
    created_at: datetime
    last_login_at: datetime | None


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "code": "content_editor", "name": "内容编辑", "permissions": ["catalog.read", "catalog.write"],
    }]})

    code: Code
    name: Name
    description: ShortText | None = None
    permissions: list[Code | str] = Field(default_factory=list, max_length=200)


class RoleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "内容编辑", "permissions": ["catalog.read", "catalog.write"]}]})

    name: Name | None = None
    description: ShortText | None = None
    permissions: list[str] | None = Field(default=None, max_length=200)


class RoleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    description: str | None
    permissions: list[str]
    is_system: bool


class PermissionOut(BaseModel):
    code: str
    name: str
    group: str


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "ERP 同步", "role_id": 3, "expires_in_days": 365}]})

    name: Name
    role_id: ObjectId
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str
    role_id: int | None = Field(description="Empty once the token's role was deleted (only possible after revocation)")
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="Shown once; store it now. Only its hash is kept.")


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    actor_kind: str
    actor_id: int | None
    actor_name: str
    action: str
    object_type: str
    object_id: str | None
    before: dict | None
    after: dict | None
    ip: str | None
    request_id: str | None
    created_at: datetime


class SmsOut(BaseModel):
    id: int
    phone: str
    template: str
    content: str
    provider: str
    status: str
    created_at: datetime
    sent_at: datetime | None
