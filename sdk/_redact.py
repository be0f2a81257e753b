"""Secrets out of printed URLs: every URL the CLI, logs or errors show goes through here.

``redact_url`` replaces a URL's password (``postgresql://user:***@host``) and
the values of query parameters that carry secrets (``password``, ``token``,
``secret``, ``key``, ``sig``, ``credential``, ``auth``... anywhere in the
name, any case) with ``***``. ``redact_text`` does it to every URL inside a
message (a driver's error, a log line).
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, quote, urlsplit

MASK = "***"
_SECRET_PARAM = re.compile(
    r"pass|pwd|secret|token|key|sig|credential|auth|session|private|bearer|jwt|sas",
    re.IGNORECASE,
)
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_USERINFO = re.compile(r"(://[^/@\s]*?:)[^/@\s]*@")


def redact_url(url: str) -> str:
    """``url`` with its password and secret-bearing query values masked."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, host = netloc.rpartition("@")
            user, colon, _password = userinfo.partition(":")
            netloc = f"{user}:{MASK}@{host}" if colon else f"{userinfo}@{host}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(_SECRET_PARAM.search(k) for k, _ in pairs):
                query = "&".join(
                    f"{quote(k, safe='')}={MASK if _SECRET_PARAM.search(k) else quote(v, safe='')}"
                    for k, v in pairs
                )
        # Splice rather than urlunsplit: that would rewrite harmless parts too
        # (``sqlite:///path`` loses its empty authority).
        shown = url
        if netloc != parts.netloc:
            shown = shown.replace(f"//{parts.netloc}", f"//{netloc}", 1)
        if query != parts.query:
            head, _, _ = shown.partition("?")
            shown = f"{head}?{query}" + (f"#{parts.fragment}" if parts.fragment else "")
        return shown
    except ValueError:  # not parseable as a URL: mask anything between ':' and '@'
        return _USERINFO.sub(rf"\1{MASK}@", url)


def redact_text(text: str) -> str:
    """``text`` with every URL in it passed through ``redact_url``."""
    return _URL.sub(lambda m: redact_url(m.group(0)), text)


class RedactingFilter(logging.Filter):
    """A handler filter that redacts URLs in every record it lets through."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if record.exc_info and record.exc_info[1] is not None:
            # Tracebacks repeat the exception's message: render and redact them here.
            formatter = logging.Formatter()
            redacted += "\n" + redact_text(formatter.formatException(record.exc_info))
            record.exc_info = None
            record.exc_text = None
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
