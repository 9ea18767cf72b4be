"""Keep credentials out of log records, including botocore's and urllib3's DEBUG output.

At DEBUG, botocore logs every request's headers (``Authorization: ... Credential=<key id>``,
``X-Amz-Security-Token``), its parameters (``ExternalId``) and every response body (an STS
``AssumeRole`` answer carries a secret key and a session token); urllib3 logs request lines,
presigned query strings included. A logger filter would only see records created by that very
logger, not by its children, so :func:`install` wraps the log-record factory instead: records
from the AWS and HTTP libraries (and ours) are formatted once and scrubbed before any handler
sees them.

Two kinds of scrubbing: known values (every secret the configuration or a credentials file
gave us, registered with :func:`remember`), and patterns for what AWS hands out at run time
(assumed-role keys and tokens). Installed on first use, never at import.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["MASK", "hide_password", "install", "redact", "remember"]

MASK = "**********"
_PREFIXES = ("botocore", "boto3", "s3transfer", "urllib3", "aiobotocore", "s3fs", "ws_artifacts")
_MIN_LENGTH = 4  # shorter values would mask ordinary words
_MAX_KNOWN = 4096

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # SigV4 Authorization header and presigned query: the key id before the scope.
    (re.compile(r"(Credential=)[^/\s,'\"&%]+"), r"\1" + MASK),
    # Session tokens as header (dict repr, canonical request line) or query parameter.
    (
        re.compile(r"(x-amz-security-token['\"]?\s*[:=]\s*b?['\"]?)[^'\"\s&,}]+", re.I),
        r"\1" + MASK,
    ),
    # A presigned URL's signature is a bearer credential for that object (SigV4 and SigV2).
    (re.compile(r"((?:AWSAccessKeyId|Signature)=)[^&\s'\",]+"), r"\1" + MASK),
    # Credentials in XML (STS answers, S3 errors) and in JSON or repr'd dicts.
    (
        re.compile(r"<(SecretAccessKey|SessionToken|AccessKeyId|AWSAccessKeyId|Token)>[^<]*</\1>"),
        r"<\1>" + MASK + r"</\1>",
    ),
    (
        re.compile(
            r"(['\"](?:SecretAccessKey|SessionToken|AccessKeyId|ExternalId|aws_secret_access_key"
            r"|aws_session_token|aws_access_key_id)['\"]\s*:\s*b?['\"])[^'\"]*"
        ),
        r"\1" + MASK,
    ),
    (re.compile(r"((?:ExternalId|SessionToken|SecretAccessKey)=)[^&\s'\"]+"), r"\1" + MASK),
]

# Values worth learning when seen (an STS answer logged by botocore.parsers, a token header):
# remembered, so a later record that shows them in any other form is masked too.
_LEARN = [
    re.compile(r"<(?:SecretAccessKey|SessionToken|AccessKeyId|Token)>([^<]+)</"),
    re.compile(r"['\"](?:SecretAccessKey|SessionToken|AccessKeyId)['\"]\s*:\s*b?['\"]([^'\"]+)"),
    re.compile(r"x-amz-security-token['\"]?\s*[:=]\s*b?['\"]?([^'\"\s&,}]+)", re.I),
]

_lock = threading.Lock()
_known: OrderedDict[str, None] = OrderedDict()
_installed = False


_URI_PASSWORD = re.compile(r"(://[^/?#@:]*:)[^/?#@]+@")


def hide_password(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` URI in it masked
    (database URIs in printed plans and commands)."""
    return _URI_PASSWORD.sub(r"\1" + MASK + "@", text)


def remember(value: str | None) -> None:
    """Mask ``value`` wherever it appears in a library log record from now on."""
    if not value or len(value) < _MIN_LENGTH:
        return
    with _lock:
        _known[value] = None
        _known.move_to_end(value)
        while len(_known) > _MAX_KNOWN:
            _known.popitem(last=False)


def redact(text: str) -> str:
    """``text`` with every remembered secret and every credential-looking field masked."""
    for learn in _LEARN:
        for value in learn.findall(text):
            if value != MASK:
                remember(value)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    with _lock:
        known = sorted(_known, key=len, reverse=True)  # longest first: no partial leftovers
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    return text


def install() -> None:
    """Scrub log records of the AWS/HTTP libraries and ours (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
        previous: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            if record.name.startswith(_PREFIXES):
                _scrub(record)
            return record

        logging.setLogRecordFactory(factory)


def _scrub(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a broken record is logging's to report, not ours
        return
    cleaned = redact(message)
    if cleaned != message:
        record.msg, record.args = cleaned, ()
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
