#!/usr/bin/env python3
"""What a worker could make of the answers it got: does any of them hold the secret?

    python3 reveal.py SECRET FILE...

Each FILE holds bytes a worker was given (a body, a header line, an error message). The
secret is looked for, ignoring case, in each file and in all of them joined in order (the
pieces of a split answer), as they are and after undoing, up to three deep, what a worker
can undo on its own: gzip and zlib, raw deflate, rot13, base64, HTML and JSON escapes,
percent-encoding, and decoding from any of a list of charsets. Prints one line per find,
"FILE: step, step, ..." (FILE is "joined" for the join), and exits 1 if there was any; 0
and prints nothing otherwise.
"""

import base64
import binascii
import codecs
import html
import re
import sys
import zlib
from urllib.parse import unquote_to_bytes

CHARSETS = ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be", "utf-7", "cp037", "cp500", "cp1026"]


def undo_json(data):
    return re.sub(rb"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)).encode("utf-8", "replace"), data).replace(
        b"\\/", b"/").replace(b'\\"', b'"').replace(b"\\\\", b"\\")


def steps(data):
    """Each (name, bytes) a worker could get from `data` in one step."""
    for name, wbits in (("gunzip", 47), ("inflate raw", -15)):
        try:
            yield name, zlib.decompress(data, wbits)
        except zlib.error:
            pass
    yield "rot13", codecs.encode(data.decode("latin-1"), "rot13").encode("latin-1")
    yield "html unescape", html.unescape(data.decode("latin-1")).encode("latin-1", "replace")
    yield "json unescape", undo_json(data)
    yield "percent-decode", unquote_to_bytes(data)
    for run in re.findall(rb"[A-Za-z0-9+/=]{8,}", data):
        try:
            yield "base64", base64.b64decode(run + b"=" * (-len(run) % 4))
        except binascii.Error:
            pass
    for charset in CHARSETS:
        try:
            yield "from " + charset, data.decode(charset).encode("utf-8")
        except (UnicodeError, ValueError):
            pass


def search(data, secret, depth):
    """The steps, at most `depth` of them, that reveal `secret` in `data`, or None."""
    if secret in data.lower():
        return []
    if depth == 0 or len(data) > 1 << 20:
        return None
    for name, result in steps(data):
        if result == data:
            continue
        found = search(result, secret, depth - 1)
        if found is not None:
            return [name] + found
    return None


def shortest(data, secret):
    for depth in range(4):
        found = search(data, secret, depth)
        if found is not None:
            return found
    return None


def main():
    secret = sys.argv[1].encode().lower()
    pieces = []
    found = False
    for path in sys.argv[2:]:
        with open(path, "rb") as file:
            pieces.append(file.read())
        how = shortest(pieces[-1], secret)
        if how is not None:
            print(f"{path}: {', '.join(how) or 'as is'}")
            found = True
    how = shortest(b"".join(pieces), secret) if len(pieces) > 1 and not found else None
    if how is not None:
        print(f"joined: {', '.join(how) or 'as is'}")
        found = True
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
