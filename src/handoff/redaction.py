"""Secret redaction before anything is stored, cached or logged.

The provider patterns (AWS, GitHub, GitLab, Slack, Stripe, npm, PyPI, Twilio, SendGrid, JWT …) are
detect-secrets' own, so they stay maintained upstream; we add what an agent's log needs on top:
whole private-key blocks (detect-secrets flags only the BEGIN line), current OpenAI/Anthropic key
shapes, `Authorization:` headers, passwords in connection strings, and `password = …`/`token: …`
assignments whose value looks random (so `password = None` or `token_count = 3` stay). Entropy
detectors are left out on purpose: they redact commit SHAs, UUIDs and content hashes, which the
next agent needs. A cheap pre-filter keeps the cost of clean text close to one regex scan.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

_MAX_SCAN_CHARS = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Rule:
    kind: str
    pattern: re.Pattern[str]
    group: int = 0  # the part of a match that is the secret (0: all of it)
    check_entropy: bool = False


_OWN_RULES = [
    Rule(
        "private_key",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
            r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)"
        ),
    ),
    Rule("anthropic_key", re.compile(r"\bsk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{20,}")),
    Rule("openai_key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{32,}")),
    Rule("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{50,})")),
    Rule("gitlab_token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}")),
    Rule("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    Rule("npm_token", re.compile(r"\bnpm_[A-Za-z0-9]{36}\b")),
    Rule("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    Rule("aws_access_key", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b")),
    Rule(
        "aws_secret_key",
        re.compile(
            r"(?i)aws.{0,20}?(?:secret|private).{0,20}?['\"]?\s*[:=]\s*['\"]?([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
        ),
        group=1,
    ),
    Rule("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    Rule(
        "authorization_header",
        re.compile(
            r"(?i)\b(?:proxy-)?authorization\s*[:=]\s*['\"]?(?:bearer|basic|token|digest)?\s*([A-Za-z0-9._~+/=-]{8,})"
        ),
        group=1,
    ),
    Rule("bearer_token", re.compile(r"(?i)\bbearer\s+([A-Za-z0-9._~+/=-]{20,})"), group=1),
    Rule(
        "connection_string_password",
        re.compile(r"\b[a-z][a-z0-9+.-]{1,20}://[^\s:/@'\"]{1,100}:([^\s@/'\"]{3,200})@[\w.-]+"),
        group=1,
    ),
    Rule(
        "secret_assignment",
        re.compile(
            r"(?i)\b(?:[\w-]{0,40}[_.-])?(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|"
            r"private[_-]?key|client[_-]?secret|auth[_-]?key)['\"]?\s*(?::=|=>|[:=])\s*['\"]?"
            r"([A-Za-z0-9+/=_.~!@#$%^&*-]{8,200})(?![\w(<\[])"
        ),
        group=1,
        check_entropy=True,
    ),
]
# Lower-case markers at least one of which every rule's match contains: text holding none of them
# is clean, and in a big text only the lines around them are examined.
_KEYWORDS = (
    "passw",
    "pwd",
    "secret",
    "token",
    "api_key",
    "api-key",
    "apikey",
    "access_key",
    "access-key",
    "private_key",
    "private-key",
    "auth_key",
    "auth-key",
)
_MARKERS = (
    *_KEYWORDS,
    "private key",
    "sk-",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xox",
    "aiza",
    "akia",
    "asia",
    "abia",
    "acca",
    "eyj",
    "authoriz",
    "bearer",
    "aws",
    "npm_",
    "pypi-",
    "sg.",
    "sk_live",
    "rk_live",
    "sk_test",
    "rk_test",
    "accountkey",
    "://",
    "akc",
    "cmvmd",
    "-us",
    "sq0",
    "_authtoken",
)
# Which markers each rule's matches contain: a rule runs only on text holding one of them.
_RULE_MARKERS: dict[str, tuple[str, ...]] = {
    "private_key": ("private key",),
    "anthropic_key": ("sk-",),
    "openai_key": ("sk-",),
    "github_token": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    "gitlab_token": ("glpat-",),
    "slack_token": ("xox",),
    "npm_token": ("npm_",),
    "google_api_key": ("aiza",),
    "aws_access_key": ("akia", "asia", "abia", "acca"),
    "aws_secret_key": ("aws",),
    "jwt": ("eyj",),
    "authorization_header": ("authoriz",),
    "bearer_token": ("bearer",),
    "connection_string_password": ("://",),
    "secret_assignment": _KEYWORDS,
    "artifactory": ("akc", "cmvmd"),
    "azure_storage_key": ("accountkey",),
    "mailchimp": ("-us",),
    "npm": ("npm_", "_authtoken"),
    "pypi_token": ("pypi-",),
    "send_grid": ("sg.",),
    "square_o_auth": ("sq0",),
    "stripe": ("sk_live", "rk_live", "sk_test", "rk_test"),
}
_WINDOW_THRESHOLD = 8_192
_MAX_WINDOWS = 20_000
# detect-secrets' regex detectors we take as they are (by class name); the rest are either covered
# above with exact spans or are entropy/IP detectors that would redact what is not a secret.
_UPSTREAM = (
    "ArtifactoryDetector",
    "AzureStorageKeyDetector",
    "MailchimpDetector",
    "NpmDetector",
    "PypiTokenDetector",
    "SendGridDetector",
    "SquareOAuthDetector",
    "StripeDetector",
)


def _upstream_rules() -> list[Rule]:
    try:
        from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    except ImportError:  # the library is a dependency; without it our own rules still apply
        return []
    rules: list[Rule] = []
    detector: Any
    for detector in get_mapping_from_secret_type_to_class().values():
        if detector.__name__ not in _UPSTREAM:
            continue
        kind = re.sub(r"(?<!^)(?=[A-Z])", "_", detector.__name__.removesuffix("Detector")).lower()
        rules.extend(Rule(kind, p, group=1 if p.groups else 0) for p in getattr(detector, "denylist", ()))
    return rules


_MARKER_RE = re.compile("|".join(re.escape(m) for m in sorted(_MARKERS, key=len, reverse=True)))


def _has_marker(lowered: str) -> bool:
    return _MARKER_RE.search(lowered) is not None


def _merged(spans: set[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _looks_random(value: str) -> bool:
    """A secret value, not a word, a placeholder or a reference (`${VAR}`, `None`, `changeme`)."""
    if len(value) < 8 or value.startswith(("$", "<", "{", "%", "os.environ", "process.env", "env(")):
        return False
    if re.fullmatch(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+", value):
        return False  # an attribute reference in code (settings.api_key), not a value
    classes = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"\d", r"[^A-Za-z0-9]"))
    return _entropy(value) >= 3.0 and classes >= 2 and not value.isalpha()


class Redactor:
    """Replaces secrets with `[REDACTED:kind]` and counts them by kind."""

    def __init__(
        self,
        *,
        enabled: bool = True,
        extra_patterns: Iterable[str] = (),
        on_redacted: Callable[[Counter[str]], None] | None = None,
    ) -> None:
        self.enabled = enabled
        self._on_redacted = on_redacted
        extra = [Rule("custom", re.compile(p)) for p in extra_patterns]
        self._rules = [*_OWN_RULES, *_upstream_rules(), *extra]
        self._extra = bool(extra)

    def redact(self, text: str) -> tuple[str, Counter[str]]:
        """The text with its secrets replaced, and how many of each kind there were."""
        counts: Counter[str] = Counter()
        if not self.enabled or not text:
            return text, counts
        if self._extra or len(text) <= _WINDOW_THRESHOLD:
            if self._extra or _has_marker(text.lower()):
                text = self._apply(text, counts)
        else:
            text = self._redact_windows(text, counts)
        if counts and self._on_redacted is not None:
            self._on_redacted(counts)
        return text, counts

    def _apply(self, text: str, counts: Counter[str]) -> str:
        found = set(_MARKER_RE.findall(text.lower()))
        for rule in self._rules:
            markers = _RULE_MARKERS.get(rule.kind)
            if markers is not None and not found.intersection(markers):
                continue
            text = rule.pattern.sub(self._replacer(rule, counts), text)
        return text

    def _replacer(self, rule: Rule, counts: Counter[str]) -> Callable[[re.Match[str]], str]:
        return lambda match: self._replace(match, rule, counts)

    def _redact_windows(self, text: str, counts: Counter[str]) -> str:
        """A big text: only the lines holding a marker are examined (a key block: up to its END)."""
        lowered = text[:_MAX_SCAN_CHARS].lower()
        spans: set[tuple[int, int]] = set()
        for marker in _MARKERS:
            at = lowered.find(marker)
            while at != -1 and len(spans) < _MAX_WINDOWS:
                start = lowered.rfind("\n", 0, at) + 1
                end = lowered.find("\n", at)
                end = len(lowered) if end == -1 else end
                if marker == "private key":
                    closing = lowered.find("-----end", at)
                    end = max(end, lowered.find("\n", closing + 8) if closing != -1 else len(lowered))
                    end = len(lowered) if end == -1 else end
                spans.add((start, end))
                at = lowered.find(marker, end)
        if not spans:
            return text
        pieces: list[str] = []
        cursor = 0
        for start, end in _merged(spans):
            pieces.append(text[cursor:start])
            pieces.append(self._apply(text[start:end], counts))
            cursor = end
        pieces.append(text[cursor:])
        return "".join(pieces)

    def redact_json(self, value: Any) -> tuple[Any, Counter[str]]:
        """The same, through every string value of a JSON value (keys are kept as they are)."""
        counts: Counter[str] = Counter()
        if not self.enabled or (not self._extra and not _has_marker(json.dumps(value, ensure_ascii=False).lower())):
            return value, counts  # one scan of the whole value instead of one per string

        def walk(item: Any) -> Any:
            if isinstance(item, str):
                text, found = self.redact(item)
                counts.update(found)
                return text
            if isinstance(item, dict):
                return {k: walk(v) for k, v in item.items()}
            if isinstance(item, list):
                return [walk(v) for v in item]
            return item

        return walk(value), counts

    @staticmethod
    def _replace(match: re.Match[str], rule: Rule, counts: Counter[str]) -> str:
        group = rule.group if rule.group <= (match.re.groups or 0) else 0
        secret = match.group(group) if group else match.group(0)
        if not secret or secret.startswith("[REDACTED:"):
            return match.group(0)
        if rule.check_entropy and not _looks_random(secret):
            return match.group(0)
        counts[rule.kind] += 1
        if not group:
            return f"[REDACTED:{rule.kind}]"
        start, end = match.span(group)
        whole = match.group(0)
        offset = match.start(0)
        return whole[: start - offset] + f"[REDACTED:{rule.kind}]" + whole[end - offset :]
