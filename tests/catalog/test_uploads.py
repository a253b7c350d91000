"""Image uploads: checked by their bytes (not the name or the client's content type) and by
size; only uploaded images of the same tenant can be put on a product."""

from __future__ import annotations

import io

from siyu.kit.storage import MAX_IMAGE_BYTES
from tests.catalog._helpers import ADMIN, create, png, single_body


async def test_a_png_is_accepted_and_can_be_put_on_a_product(runtime, tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(await tenant_factory())
    data = png()
    r = await owner.post(f"{ADMIN}/images", files={"file": ("leaf.png", data, "image/png")})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["content_type"] == "image/png" and body["size"] == len(data) and body["url"].startswith("/media/")
    # The file is served from the media folder.
    served = await owner.get(body["url"])
    assert served.status_code == 200 and served.content == data
    # A JPEG named .txt with a wrong content type is still a JPEG.
    buf = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (4, 4), (200, 10, 10)).save(buf, "JPEG")
    r = await owner.post(f"{ADMIN}/images", files={"file": ("photo.txt", buf.getvalue(), "text/plain")})
    assert r.status_code == 201 and r.json()["content_type"] == "image/jpeg"
    jpeg_url = r.json()["url"]
    p = await create(owner, single_body(images=[body["url"], jpeg_url]))
    assert p["main_image"] == body["url"] and p["images"] == [body["url"], jpeg_url]
    r = await owner.patch(f"{ADMIN}/products/{p['id']}", json={"main_image": jpeg_url})
    assert r.status_code == 200 and r.json()["main_image"] == jpeg_url
    r = await owner.patch(f"{ADMIN}/products/{p['id']}", json={"images": [body["url"]]})
    assert r.json()["images"] == [body["url"]] and r.json()["main_image"] == body["url"]
    r = await owner.get("/api/admin/v1/audit-log", params={"action": "media.upload"})
    assert r.json()["total"] == 2


async def test_bad_files_are_refused(tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(await tenant_factory())
    # A text file renamed .png, with an image content type.
    r = await owner.post(f"{ADMIN}/images", files={"file": ("evil.png", b"<?php echo 'hi'; ?>", "image/png")})
    assert r.status_code == 422 and r.json()["code"] == "unsupported_file_type"
    assert r.headers["content-type"].startswith("application/problem+json")
    # An SVG (scripts can hide in it) is not on the list.
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    r = await owner.post(f"{ADMIN}/images", files={"file": ("x.svg", svg, "image/svg+xml")})
    assert r.status_code == 422 and r.json()["code"] == "unsupported_file_type"
    # PNG magic followed by garbage: the signature passes, the decoder does not.
    r = await owner.post(f"{ADMIN}/images", files={"file": ("broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png")})
    assert r.status_code == 422 and r.json()["code"] == "invalid_image"
    r = await owner.post(f"{ADMIN}/images", files={"file": ("empty.png", b"", "image/png")})
    assert r.status_code == 422 and r.json()["code"] == "empty_file"
    # Too large: 413 before anything is decoded or stored.
    big = png() + b"\x00" * MAX_IMAGE_BYTES
    r = await owner.post(f"{ADMIN}/images", files={"file": ("big.png", big, "image/png")})
    assert r.status_code == 413 and r.json()["code"] == "file_too_large"
    # No file at all.
    r = await owner.post(f"{ADMIN}/images", json={"file": "x"})
    assert r.status_code == 422
    r = await owner.get("/api/admin/v1/audit-log", params={"action": "media.upload"})
    assert r.json()["total"] == 0


async def test_only_this_tenants_uploads_can_be_used(tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(await tenant_factory())
    other = await login_as(await tenant_factory())
    theirs = (await other.post(f"{ADMIN}/images", files={"file": ("a.png", png((1, 2, 3)), "image/png")})).json()["url"]
    for images in ([theirs], ["/media/t1/product/aa/made-up.png"], ["https://evil.example/x.png"]):
        r = await owner.post(f"{ADMIN}/products", json=single_body(images=images))
        assert r.status_code == 422 and r.json()["code"] == "image_not_found", images
    for bad in (["javascript:alert(1)"], ["//evil.example/x.png"], ["data:image/png;base64,AAAA"]):
        r = await owner.post(f"{ADMIN}/products", json=single_body(images=bad))
        assert r.status_code == 422 and r.json()["code"] == "validation_error", bad
    r = await owner.post(f"{ADMIN}/products", json=single_body(images=[f"/media/{i}.png" for i in range(10)]))
    assert r.status_code == 422
    r = await owner.post(f"{ADMIN}/products", json={"title": "x", "skus": [{"price_fen": 1, "image_url": theirs}]})
    assert r.status_code == 422 and r.json()["code"] == "image_not_found"
