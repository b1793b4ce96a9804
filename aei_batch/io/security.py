"""Keep secrets out of everything we print or store.

Two kinds of secret can reach a message: the values of the credential variables in the environment, and
credentials written into a URL (`s3://KEY:SECRET@bucket/x`). `redact` masks both in any text; every
`AeiError` and `FileError` message passes through it (aei_batch/errors.py). A run given such a URL as a
source, output or model directory is refused (`aei_batch.io.storage.refuse_credentials_in_url`). This
module imports nothing from aei_batch, so errors.py can use it.
"""

from __future__ import annotations

import os
import re

SECRET_ENV_VARS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")

# `//user:password@` in a URL. The user part cannot hold '/', the password may (AWS secrets do).
_USERINFO = re.compile(r"//[^/\s@:]*:[^\s@]*@")
_MASK = "//***@"


def redact(text: str) -> str:
    """Mask credential values found in the environment and `user:password@` parts of URLs."""
    for name in SECRET_ENV_VARS:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return _USERINFO.sub(_MASK, text)


def has_credentials_in_url(uri: str) -> bool:
    """Whether `uri` carries a `user:password@` (or any `...@`) part before its host or bucket."""
    if _USERINFO.search(uri):
        return True
    scheme, sep, rest = uri.partition("://")
    return bool(sep) and "@" in rest.split("/", 1)[0]


def mask_url(uri: str) -> str:
    """`uri` with any credentials before its host or bucket replaced by `***`."""
    masked = _USERINFO.sub(_MASK, uri)
    if masked == uri and has_credentials_in_url(uri):  # an '@' without ':': mask the whole user part
        scheme, _, rest = uri.partition("://")
        host = rest.split("/", 1)[0]
        masked = f"{scheme}://***@{host.rsplit('@', 1)[-1]}{rest[len(host) :]}"
    return masked
