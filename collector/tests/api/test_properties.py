"""Property-based (hypothesis) tests of the label, reference and config endpoints of a real
collector: any JSON body (or any bytes for a part) is answered without a server error, and
valid bodies round-trip. Derandomized and small, for make test."""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inferwatch.frame import CONTENT_TYPE as FRAME_TYPE
from inferwatch.frame import Frame, categorical, encode_frame, numeric

REFERENCE = "/v1/models/m/versions/1/reference"
BOUNDED = settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
# Any JSON Python's parser reads, the non-standard constants (NaN, Infinity) and lone
# surrogates included.
any_text = st.text(st.characters() | st.characters(categories=["Cs"]), max_size=20)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(2**1024, 10**400)
    | st.floats()
    | any_text
)
any_json = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=30,
)
# Shaped like the bodies, so that generation reaches past the first checks.
label_like = st.fixed_dictionaries(
    {"prediction_id": any_text | any_json, "label": scalars | any_json},
    optional={"extra": any_json},
)
labels_like = st.fixed_dictionaries(
    {
        "model": st.text(max_size=10) | any_json,
        "labels": st.lists(label_like, max_size=5) | any_json,
    }
)
config_like = st.dictionaries(
    st.sampled_from(["window", "allowed_lateness", "detectors", "alerts", "reference", "x"]),
    scalars | any_json,
    max_size=4,
)


def send_json(client: httpx.Client, method: str, path: str, body: Any) -> httpx.Response:
    content = json.dumps(body).encode("utf-8", "surrogatepass")
    response = client.request(
        method, path, content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code < 500, (body, response.text)
    if response.status_code >= 400:
        assert set(response.json()) == {"error"}, response.text
        assert response.status_code not in (429, 503), response.text
    return response


def test_any_json_body_is_answered_without_a_server_error(make_collector) -> None:
    collector = make_collector()
    with collector.client() as client:

        @BOUNDED
        @given(labels=labels_like | any_json, config=config_like | any_json, upload=any_json)
        def check(labels: Any, config: Any, upload: Any) -> None:
            send_json(client, "POST", "/v1/labels", labels)
            send_json(client, "PUT", "/v1/models/m/config", config)
            send_json(client, "POST", f"{REFERENCE}/uploads", upload)

        check()


# Valid bodies
texts = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=20)
finite = st.floats(allow_nan=False, allow_infinity=False)
labels_valid = st.lists(
    st.fixed_dictionaries(
        {"prediction_id": texts, "label": texts | st.integers(-(2**70), 2**70) | finite}
    ),
    min_size=1,
    max_size=20,
    unique_by=lambda label: label["prediction_id"],
)
durations = st.integers(1, 7 * 86_400)


def test_valid_labels_are_accepted_and_counted(make_collector) -> None:
    collector = make_collector()
    with collector.client() as client:
        sent = {"n": 0}

        @BOUNDED
        @given(model=texts, labels=labels_valid)
        def check(model: str, labels: list[dict[str, Any]]) -> None:
            answer = send_json(client, "POST", "/v1/labels", {"model": model, "labels": labels})
            assert answer.status_code == 200, answer.text
            outcome = answer.json()
            assert outcome["accepted"] == len(labels)
            assert outcome["pending"] + outcome["joined"] == len(labels)
            sent["n"] += 1

        check()
        assert sent["n"] > 0


def test_valid_config_changes_round_trip(make_collector) -> None:
    collector = make_collector()
    with collector.client() as client:

        @BOUNDED
        @given(
            model=texts.filter(lambda m: "/" not in m),
            window=durations,
            lateness=st.integers(0, 86_400),
            threshold=st.floats(0.001, 1.0),
        )
        def check(model: str, window: int, lateness: int, threshold: float) -> None:
            change = {
                "window": window,
                "allowed_lateness": lateness,
                "detectors": {"error_rate": {"threshold": threshold}},
            }
            path = f"/v1/models/{quote(model, safe='')}/config"
            put = send_json(client, "PUT", path, change)
            assert put.status_code == 200, put.text
            shown = client.get(path).json()
            assert (shown["window"], shown["allowed_lateness"]) == (window, lateness)
            assert math.isclose(shown["detectors"]["error_rate"]["threshold"], threshold)

        check()


def test_parts_of_any_bytes_never_fail_and_frames_round_trip(make_collector) -> None:
    collector = make_collector()
    with collector.client() as client:
        upload = client.post(f"{REFERENCE}/uploads").json()["upload_id"]
        parts = f"{REFERENCE}/uploads/{upload}/parts"

        @BOUNDED
        @given(
            junk=st.binary(max_size=200),
            part=st.integers(0, 2**63 - 1),
            rows=st.integers(1, 50),
            seed=st.integers(0, 2**32 - 1),
        )
        def check(junk: bytes, part: int, rows: int, seed: int) -> None:
            headers = {"content-type": FRAME_TYPE}
            refused = client.put(f"{parts}/{part}", content=b"IWF1" + junk, headers=headers)
            assert refused.status_code == 400 and "error" in refused.json(), refused.text
            stored = client.put(f"{parts}/{part}", content=frame(rows, seed), headers=headers)
            assert stored.status_code == 200 and stored.json() == {"rows": rows}, stored.text

        check()


def frame(rows: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return encode_frame(
        Frame(
            rows,
            (
                numeric("x", rng.normal(size=(rows, 2)), names=["x0", "x1"]),
                categorical("prediction", rng.choice(["no", "yes"], size=rows), role="output"),
            ),
        )
    )
