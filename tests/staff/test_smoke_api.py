from tests.conftest import TenantInfo


async def test_owner_signs_in_and_reads_me(tenant_factory, login_as) -> None:
    t: TenantInfo = await tenant_factory()
    owner = await login_as(t)
    r = await owner.get("/api/admin/v1/me")
    assert r.status_code == 200
    body = r.json()
    assert body["tenant_code"] == t.code
    assert body["role"] == "owner"
    assert "staff.write" in body["permissions"]
