#!/usr/bin/env python3
"""What a worker could make of the answers it got: does any of them hold the secret?

    python3 reveal.py -s SECRET [-s SECRET...] FILE...

Each FILE holds bytes a worker was given (a body, a header line, an error message). Each
secret is looked for, ignoring case, in each file and in all of them joined in order (the
pieces of a split answer), as they are and after undoing, up to three deep, what a worker
can undo on its own: gzip and zlib, raw deflate, rot13, base64, HTML and JSON escapes,
percent-encoding, and decoding from any of a list of charsets. Prints one line per find,
"SECRET'S FIRST 6 CHARACTERS... in FILE: step, step, ..." (FILE is "joined" for the join),
and exits 1 if there was any; 0 and prints nothing otherwise.
"""

import argparse
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


def shortest(data, secrets, depth=3):
    """(secret, steps) for the fewest steps, at most `depth`, that reveal a secret, or None.
    Breadth first, each distinct text once."""
    level, seen = [(data, [])], {data}
    for _ in range(depth + 1):
        following = []
        for text, how in level:
            lower = text.lower()
            for secret in secrets:
                if secret in lower:
                    return secret, how
            if len(how) == depth or len(text) > 1 << 20:
                continue
            for name, result in steps(text):
                if result not in seen:
                    seen.add(result)
                    following.append((result, how + [name]))
        level = following
    return None


def main():
    arguments = argparse.ArgumentParser(description="could a worker recover a secret from these bytes?")
    arguments.add_argument("-s", "--secret", action="append", required=True)
    arguments.add_argument("files", nargs="+")
    parsed = arguments.parse_args()
    secrets = [secret.encode().lower() for secret in parsed.secret]
    pieces = []
    finds = []
    for path in parsed.files:
        with open(path, "rb") as file:
            pieces.append(file.read())
        finds.append((path, shortest(pieces[-1], secrets)))
    if len(pieces) > 1 and not any(found for _, found in finds):
        finds.append(("joined", shortest(b"".join(pieces), secrets)))
    for path, found in finds:
        if found:
            secret, how = found
            print(f"{secret[:6].decode(errors='replace')}... in {path}: {', '.join(how) or 'as is'}")
    sys.exit(1 if any(found for _, found in finds) else 0)


if __name__ == "__main__":
    main()
