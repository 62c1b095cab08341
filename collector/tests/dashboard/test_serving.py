"""GET / and /dashboard/...: the page and its assets, served by a real collector."""

from __future__ import annotations

from .conftest import MODEL


def test_page_and_assets_have_their_content_types(filled) -> None:
    collector, _ = filled
    with collector.client() as client:
        page = client.get("/")
        script = client.get("/dashboard/app.js")
        style = client.get("/dashboard/style.css")
        missing = client.get("/dashboard/nothing.js")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    # Relative links, so the page also works behind a proxy that adds a path prefix.
    assert 'src="dashboard/app.js"' in page.text and 'href="dashboard/style.css"' in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "Authorization" in script.text
    assert style.status_code == 200
    assert style.headers["content-type"].startswith("text/css")
    assert missing.status_code == 404


def test_the_page_needs_no_key_but_its_data_does(make_collector) -> None:
    collector = make_collector(api_keys=["s3cret"])
    with collector.client() as client:
        assert client.get("/").status_code == 200
        assert client.get("/dashboard/app.js").status_code == 200
        assert client.get("/v1/models").status_code == 401
        keyed = client.get("/v1/models", headers={"Authorization": "Bearer s3cret"})
    assert keyed.status_code == 200


def test_the_api_still_answers_next_to_the_page(filled) -> None:
    collector, windows = filled
    with collector.client() as client:
        models = client.get("/v1/models").json()["models"]
        # A POST to the page's path is refused, not routed to the page.
        assert client.post("/").status_code == 405
    assert [m["model"] for m in models] == [MODEL]
    assert len(windows) == 3
