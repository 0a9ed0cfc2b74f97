"""Signatures: the header format, verification, tampering, wrong secrets, the time tolerance, rotation."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from core.webhooks.signing import (
    InvalidSignature,
    compute_signature,
    new_secret,
    parse_header,
    secret_hint,
    signature_header,
    verify_signature,
)

SECRET = "whsec_test-secret"
BODY = b'{"id":"e1","type":"points.earned","data":{"points":5}}'
T = 1_800_000_000


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert compute_signature(SECRET, T, BODY) == expected
    assert signature_header([SECRET], BODY, T) == f"t={T},v1={expected}"


def test_a_good_signature_verifies_and_returns_its_timestamp() -> None:
    header = signature_header([SECRET], BODY, T)
    assert verify_signature(SECRET, header, BODY, now=T + 10) == T
    assert verify_signature(SECRET, header, BODY, now=T - 10) == T  # clocks a little apart either way


@pytest.mark.parametrize(
    ("secret", "body", "why"),
    [
        (SECRET, BODY.replace(b"5", b"6"), "altered"),  # tampered body
        (SECRET, BODY + b" ", "altered"),  # even one byte
        ("whsec_another", BODY, "wrong secret"),
    ],
)
def test_tampering_or_a_wrong_secret_fails(secret: str, body: bytes, why: str) -> None:
    header = signature_header([SECRET], BODY, T)
    with pytest.raises(InvalidSignature, match="No signature matches"):
        verify_signature(secret, header, body, now=T)


def test_a_signed_timestamp_cannot_be_changed() -> None:
    header = signature_header([SECRET], BODY, T).replace(f"t={T}", f"t={T + 60}")
    with pytest.raises(InvalidSignature, match="No signature matches"):
        verify_signature(SECRET, header, BODY, now=T + 60)


@pytest.mark.parametrize(("now", "ok"), [(T + 300, True), (T - 300, True), (T + 301, False), (T - 301, False)])
def test_old_or_future_timestamps_are_refused_outside_the_tolerance(now: int, ok: bool) -> None:
    header = signature_header([SECRET], BODY, T)
    if ok:
        assert verify_signature(SECRET, header, BODY, now=now) == T
    else:
        with pytest.raises(InvalidSignature, match="300 s"):
            verify_signature(SECRET, header, BODY, now=now)
    assert verify_signature(SECRET, header, BODY, tolerance_s=3600, now=T + 3000) == T


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing"),
        ("", "missing"),
        ("v1=abc", "no timestamp"),
        (f"t={T}", "no v1"),
        (f"t=soon,v1={'0' * 64}", "not a number"),
        (f"t={T},v0={'0' * 64}", "no v1"),
    ],
)
def test_malformed_headers_are_refused(header: str | None, message: str) -> None:
    with pytest.raises(InvalidSignature, match=message):
        verify_signature(SECRET, header, BODY, now=T)


def test_during_a_rotation_either_secret_verifies() -> None:
    header = signature_header(["whsec_new", "whsec_old"], BODY, T)
    timestamp, signatures = parse_header(header)
    assert timestamp == T and len(signatures) == 2
    assert verify_signature("whsec_new", header, BODY, now=T) == T
    assert verify_signature("whsec_old", header, BODY, now=T) == T
    with pytest.raises(InvalidSignature):
        verify_signature("whsec_other", header, BODY, now=T)


def test_secrets_are_random_and_hints_do_not_reveal_them() -> None:
    a, b = new_secret(), new_secret()
    assert a != b and a.startswith("whsec_") and len(a) >= 6 + 43
    hint = secret_hint(a)
    assert hint == f"whsec_…{a[-4:]}" and a[6:-4] not in hint
