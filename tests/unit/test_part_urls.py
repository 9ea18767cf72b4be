"""Presigned part URLs: the ones signed here are byte for byte botocore's, and 10 000 of them
cost one botocore signing."""

from __future__ import annotations

import datetime
from typing import Any

import boto3
import pytest
from botocore.config import Config

from ws_artifacts.storage.s3.presign import part_urls

KEYS = ["ws/workspaces/ws/1/r/artifacts/m.bin", "a b/ü~+=&?/x y.bin", "k/%41/!'()*"]


def _client(style: str, token: str | None = None) -> Any:
    return boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9000",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret/with+chars",
        aws_session_token=token,
        region_name="eu-west-3",
        config=Config(signature_version="s3v4", s3={"addressing_style": style}),
    )


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    fixed = datetime.datetime(2026, 12, 3, 18, 0, 0, tzinfo=datetime.UTC)
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: fixed)


@pytest.mark.parametrize("key", KEYS, ids=["plain", "odd-characters", "escapes"])
@pytest.mark.parametrize(
    ("style", "token"),
    [("path", None), ("path", "tok/en+=="), ("auto", None)],
    ids=["path", "session-token", "auto"],
)
def test_part_urls_equal_botocore_urls(key: str, style: str, token: str | None) -> None:
    client = _client(style, token)
    urls = part_urls(client, "bucket-1", key, "upload/id+==", 120)
    expected = [
        client.generate_presigned_url(
            "upload_part",
            Params={"Bucket": "bucket-1", "Key": key, "PartNumber": n, "UploadId": "upload/id+=="},
            ExpiresIn=3600,
        )
        for n in range(1, 121)
    ]
    assert urls == expected


def test_ten_thousand_parts_cost_one_botocore_signing(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client("path")
    calls = []
    original = client.generate_presigned_url

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["Params"]["PartNumber"])
        return original(*args, **kwargs)

    monkeypatch.setattr(client, "generate_presigned_url", counted)
    urls = part_urls(client, "bucket-1", "k/m.bin", "u1", 10_000)
    assert calls == [1]
    assert len(urls) == len(set(urls)) == 10_000
    assert urls[9_999] == original(
        "upload_part",
        Params={"Bucket": "bucket-1", "Key": "k/m.bin", "PartNumber": 10_000, "UploadId": "u1"},
        ExpiresIn=3600,
    )


def test_a_signature_that_differs_from_botocore_falls_back_to_botocore(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = _client("path")
    calls = []
    original = client.generate_presigned_url

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["Params"]["PartNumber"])
        return original(*args, **kwargs)

    monkeypatch.setattr(client, "generate_presigned_url", counted)
    monkeypatch.setattr("ws_artifacts.storage.s3.presign._PartSigner.url", lambda self, n: "other")
    urls = part_urls(client, "bucket-1", "k/m.bin", "u1", 3)
    assert calls == [1, 2, 3]
    assert [u.split("partNumber=")[1].split("&")[0] for u in urls] == ["1", "2", "3"]
