"""Secret redaction: known secrets out, ordinary hashes, ids and code left alone."""

from __future__ import annotations

import pytest

from handoff.redaction import Redactor

POSITIVE = [
    (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----",
        "private_key",
    ),
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1c7+9z5Pad7OejecsQ0bu3aumOMHZ+mEeSNLGk3rYVfdhZn\n(truncated",
        "private_key",
    ),
    ("export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE", "aws_access_key"),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_key"),
    ("GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123456789", "github_token"),
    ("token github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV", "github_token"),
    ("CI_JOB_TOKEN=glpat-abcdefghijklmnopqrst", "gitlab_token"),
    ("SLACK_BOT_TOKEN=xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "slack_token"),
    ("ANTHROPIC_API_KEY=sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-abcdefgh", "anthropic_key"),
    ("OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwxyzABCDEFGH1234567890", "openai_key"),
    ("curl -H 'Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345'", "authorization_header"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "jwt"),
    ("DATABASE_URL=postgresql://app:S3cr3tPa55word@db.internal:5432/app", "connection_string_password"),
    ('db_password = "xK9#mQ2$vL7pR4!z"', "secret_assignment"),
    ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "stripe"),
    ("//registry.npmjs.org/:_authToken=npm_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ", "npm_token"),
]
NEGATIVE = [
    "commit 4f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39",
    "uuid 123e4567-e89b-12d3-a456-426614174000",
    "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "password = None",
    "token_count = 3",
    "max_tokens=4096",
    "token = get_token()",
    "apiKey: settings.openai_api_key,",
    "password: ${DB_PASSWORD}",
    "setFirstTokenReceived: React.Dispatch<React.SetStateAction<boolean>>,",
    "const PROMPT_TOKENS = encode(prompt).length",
    "https://github.com/owner/repo/pull/12",
    "The password must be at least twelve characters long.",
]


@pytest.mark.parametrize(("text", "kind"), POSITIVE)
def test_known_secrets_are_redacted(text: str, kind: str) -> None:
    redacted, counts = Redactor().redact(text)
    assert counts[kind] >= 1, (redacted, counts)
    assert f"[REDACTED:{kind}]" in redacted


@pytest.mark.parametrize("text", NEGATIVE)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert Redactor().redact(text) == (text, {})


def test_json_values_are_redacted_keys_kept_and_the_off_switch_works() -> None:
    value = {"env": ["GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123456789"], "ghp_key_name": 1}
    redacted, counts = Redactor().redact_json(value)
    assert (
        redacted == {"env": ["GITHUB_TOKEN=[REDACTED:github_token]"], "ghp_key_name": 1} and counts["github_token"] == 1
    )
    assert Redactor(enabled=False).redact_json(value) == (value, {})


def test_extra_patterns_and_the_metrics_callback() -> None:
    seen: list[dict[str, int]] = []
    redactor = Redactor(extra_patterns=[r"ACME-\d{6}"], on_redacted=lambda c: seen.append(dict(c)))
    assert redactor.redact("ticket ACME-123456 done")[0] == "ticket [REDACTED:custom] done"
    assert seen == [{"custom": 1}]


def test_large_clean_text_is_cheap_and_unchanged() -> None:
    text = "plain log line with nothing special\n" * 200_000
    assert Redactor().redact(text)[0] is text
