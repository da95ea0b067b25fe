"""Key pairs, tokens and the data folder's credentials, in memory (the HTTP side is in integration)."""
from __future__ import annotations

import base64
import json
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jwt
import pytest

from gateway.auth import DEFAULT_EXPIRATION_SEC, Authenticator
from gateway.envelope import ApiError
from gateway.identity import DEFAULT_IDENTITY, Identity
from tasktrail.config import Settings
from tasktrail.credentials import CREDENTIALS_FILE, complete_credentials, local_credentials, with_credentials

SECRET = "s" * 40
ALICE = Identity(user="alice-id", company="acme", role="user", user_name="Alice", company_name="ACME")


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def authenticator(clock: Clock | None = None) -> Authenticator:
    return Authenticator({"AK": ("SK", ALICE)}, SECRET, clock=clock or Clock())


def basic(value: str) -> str:
    return "Basic " + base64.b64encode(value.encode()).decode()


def refusal(call) -> tuple[int, int]:
    with pytest.raises(ApiError) as raised:
        call()
    return raised.value.code, raised.value.subcode


def test_a_valid_key_pair_identifies_its_user() -> None:
    assert authenticator().identify(basic("AK:SK")) == ALICE


def test_a_token_carries_the_identity_and_the_claims_the_sdk_reads() -> None:
    clock = Clock()
    token = authenticator(clock).issue_token(ALICE)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False})
    assert claims["identity"] == {
        "user": "alice-id", "company": "acme", "role": "user", "user_name": "Alice", "company_name": "ACME",
    }
    assert claims["api_version"] == "2.23" and claims["feature_set"] == "basic"
    assert claims["iat"] == int(clock.now) and claims["exp"] == int(clock.now) + DEFAULT_EXPIRATION_SEC
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_a_token_proves_its_identity_until_it_expires() -> None:
    clock = Clock(now=time.time())
    auth = authenticator(clock)
    token = auth.issue_token(ALICE, expiration_sec=60)
    assert auth.identify(f"Bearer {token}") == ALICE
    clock.now += 61
    assert refusal(lambda: auth.identify(f"Bearer {token}")) == (401, 30)


def test_a_client_cannot_ask_for_a_token_longer_than_the_default() -> None:
    clock = Clock()
    token = authenticator(clock).issue_token(ALICE, expiration_sec=10 * DEFAULT_EXPIRATION_SEC)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == DEFAULT_EXPIRATION_SEC


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, (401, 20)),
        ("", (401, 20)),
        ("Bearer", (401, 20)),
        ("Digest abc", (401, 10)),
        ("Basic not-base64!", (401, 21)),
        (basic("no-colon"), (401, 21)),
        (basic("AK:wrong"), (401, 22)),
        (basic("unknown:SK"), (401, 22)),
        ("Bearer not.a.jwt", (401, 30)),
    ],
)
def test_missing_malformed_or_wrong_credentials_are_refused_with_clearml_subcodes(header, expected) -> None:
    assert refusal(lambda: authenticator().identify(header)) == expected


def test_a_token_signed_with_another_secret_or_without_identity_is_refused() -> None:
    auth = authenticator()
    other = Authenticator({}, "o" * 40).issue_token(ALICE)
    assert refusal(lambda: auth.check_token(other)) == (401, 30)
    now = int(auth.clock())
    anonymous = jwt.encode({"iat": now, "exp": now + 60}, SECRET, algorithm="HS256")
    assert refusal(lambda: auth.check_token(anonymous)) == (401, 30)
    unsigned = jwt.encode({"identity": ALICE.claims(), "iat": now, "exp": now + 60}, None, algorithm="none")
    assert refusal(lambda: auth.check_token(unsigned)) == (401, 30)


def test_a_short_signing_secret_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        Authenticator({}, "short")


def test_the_data_folder_keeps_one_generated_pair_readable_by_its_owner_only(tmp_path: Path) -> None:
    first = local_credentials(tmp_path)
    assert stat.S_IMODE((tmp_path / CREDENTIALS_FILE).stat().st_mode) == 0o600
    assert local_credentials(tmp_path) == first
    assert len(first.auth_secret) >= 32 and first.access_key != first.secret_key


def test_processes_creating_the_credentials_together_all_get_the_same_ones(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        results = set(pool.map(lambda _: local_credentials(tmp_path), range(16)))
    assert len(results) == 1
    assert [path.name for path in tmp_path.iterdir()] == [CREDENTIALS_FILE]


def test_configured_keys_win_and_only_what_is_missing_comes_from_the_data_folder(tmp_path: Path) -> None:
    configured = complete_credentials("AK", "SK", "", tmp_path)
    stored = json.loads((tmp_path / CREDENTIALS_FILE).read_text())
    assert (configured.access_key, configured.secret_key) == ("AK", "SK")
    assert configured.auth_secret == stored["auth_secret"]
    settings = with_credentials(Settings(tmp_path, "", "", "", access_key="", secret_key="", auth_secret=SECRET))
    assert settings.access_key == stored["access_key"] and settings.auth_secret == SECRET


def test_half_a_key_pair_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="both"):
        complete_credentials("AK", "", "", tmp_path)


def test_the_default_identity_is_an_ordinary_user() -> None:
    assert DEFAULT_IDENTITY.role == "user"
