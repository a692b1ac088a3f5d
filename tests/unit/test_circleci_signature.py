import hashlib
import hmac

import pytest

from telemetry.pipeline.circleci import verify_signature

SECRET = b"secret"
BODY = b'{"type":"ping","id":"x"}'
GOOD = hmac.new(SECRET, BODY, hashlib.sha256).hexdigest()


def test_valid_v1_signature_is_accepted() -> None:
    assert verify_signature(SECRET, BODY, f"v1={GOOD}")


def test_uppercase_hex_is_accepted() -> None:
    assert verify_signature(SECRET, BODY, f"v1={GOOD.upper()}")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "v1=",
        f"v1={'0' * 64}",
        f"v2={GOOD}",
        f"v1={GOOD[:-1]}",
        "v1=not-hex-at-all",
        "v1=\u00e9\u00e9",
        GOOD,
        "v1",
    ],
    ids=[
        "missing",
        "empty",
        "blank",
        "wrong",
        "v2-only",
        "short",
        "bad-hex",
        "non-ascii",
        "no-version",
        "no-value",
    ],
)
def test_bad_or_missing_signature_is_refused(header: str | None) -> None:
    assert not verify_signature(SECRET, BODY, header)


def test_any_matching_v1_entry_among_several_is_accepted() -> None:
    assert verify_signature(SECRET, BODY, f"v2=abc, v1={'0' * 64},v1={GOOD}")


def test_signature_of_another_body_is_refused() -> None:
    assert not verify_signature(SECRET, BODY + b" ", f"v1={GOOD}")


def test_empty_secret_never_verifies() -> None:
    empty = hmac.new(b"", BODY, hashlib.sha256).hexdigest()
    assert not verify_signature(b"", BODY, f"v1={empty}")
