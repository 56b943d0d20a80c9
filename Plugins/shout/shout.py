#!/usr/bin/env python3
"""shout: a reference Purser worker (protocol v1) in plain Python 3, standard library only.

It upper-cases text:  run input {"text": "hi"}  ->  output {"text": "HI"}.

Protocol summary (see the protocol notes / SPEC.md for the full story):
  * one compact JSON-RPC 2.0 message per line on stdin (from the supervisor) and stdout (to it);
  * stdout carries protocol only -- every diagnostic goes to stderr;
  * requests handled: initialize, run, ping, shutdown; notification handled: cancel;
  * before answering a run it sends one `progress` notification (fraction 1.0) and one
    `usage` notification: 0.01 credits per started 100 characters of input text;
  * it exits on `shutdown` (after answering) and when stdin reaches end of file.
"""

import json
import math
import sys

PROTOCOL_VERSION = 1
PLUGIN = {"name": "shout", "version": "1.0.0"}

# JSON-RPC error codes used here.
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
CANCELLED = -32800
UNSUPPORTED_VERSION = -32001

# The protocol's stdout: the real one, as bytes. sys.stdout is pointed at stderr so that a
# stray print() can never corrupt the protocol stream.
_protocol_out = sys.stdout.buffer
sys.stdout = sys.stderr

max_line_bytes = 8 * 1024 * 1024  # updated from initialize params.limits.maxLineBytes


def log(message):
    print("shout: " + message, file=sys.stderr, flush=True)


def encode(message):
    """Compact UTF-8 JSON. Text holding lone surrogates cannot be UTF-8: escape it instead."""
    try:
        return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(message, separators=(",", ":")).encode("ascii")


def send(message):
    line = encode(message)
    if len(line) > max_line_bytes and "id" in message:
        # Never send a line the supervisor would have to reject.
        line = encode(error_response(message["id"], INTERNAL_ERROR,
                                     "response exceeds maxLineBytes (%d)" % max_line_bytes))
    try:
        _protocol_out.write(line + b"\n")
        _protocol_out.flush()
    except BrokenPipeError:
        sys.exit(0)  # the supervisor is gone


def result_response(request_id, result):
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def error_response(request_id, code, message, data=None):
    error = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def notify(method, params):
    send({"jsonrpc": "2.0", "method": method, "params": params})


class RequestError(Exception):
    """Raised by a handler to answer its request with a JSON-RPC error."""

    def __init__(self, code, message, data=None):
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


# ---------------------------------------------------------------- handlers


def handle_initialize(params):
    global max_line_bytes
    version = params.get("protocolVersion")
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise RequestError(UNSUPPORTED_VERSION,
                           "unsupported protocol version %s; shout speaks %d"
                           % (json.dumps(version), PROTOCOL_VERSION),
                           {"supported": [PROTOCOL_VERSION]})
    limits = params.get("limits")
    if isinstance(limits, dict):
        value = limits.get("maxLineBytes")
        if type(value) is int and value > 0:
            max_line_bytes = value
    return {
        "protocolVersion": PROTOCOL_VERSION,
        "plugin": PLUGIN,
        "capabilities": {"cancel": True, "progress": True},
    }


def credits_for(text):
    """0.01 credits per started 100 characters: 1..100 -> 0.01, 101..200 -> 0.02, ..."""
    hundreds = math.ceil(len(text) / 100)
    return hundreds / 100  # correctly rounded, so it prints as e.g. 0.07, not 0.07000000000000001


def handle_run(params):
    text = input_text(params)
    # Runs finish before the next line is read, so a run is never in progress when a
    # cancel arrives: there is nothing to answer CANCELLED for (see handle_cancel).
    shouted = text.upper()
    spent = credits_for(text)
    progress = {"fraction": 1.0}
    if "runId" in params:
        progress["runId"] = params["runId"]
    notify("progress", progress)
    notify("usage", {"credits": spent})
    return {"output": {"text": shouted}, "usage": {"credits": spent}}


def input_text(params):
    """params.input.text, or RequestError(INVALID_PARAMS) saying what is wrong."""
    expected = 'input must be an object {"text": string}'
    if "input" not in params:
        raise RequestError(INVALID_PARAMS, expected + "; params.input is missing")
    data = params["input"]
    if not isinstance(data, dict):
        raise RequestError(INVALID_PARAMS, "%s, got %s" % (expected, kind(data)))
    if "text" not in data:
        raise RequestError(INVALID_PARAMS, expected + "; input.text is missing")
    if not isinstance(data["text"], str):
        raise RequestError(INVALID_PARAMS,
                           "%s; input.text is %s" % (expected, kind(data["text"])))
    return data["text"]


def kind(value):
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {dict: "an object", list: "an array", str: "a string",
            type(None): "null"}.get(type(value), "a value")


def handle_cancel(params):
    # A synchronous worker only reads a cancel after its run has been answered, so the run
    # it names is finished (or unknown) and the protocol says to ignore it. A worker doing
    # the run in the background would answer that run with CANCELLED here.
    log("cancel for %s ignored: no run in progress" % json.dumps(params.get("runId")))


REQUESTS = {
    "initialize": handle_initialize,
    "run": handle_run,
    "ping": lambda params: {},
    "shutdown": lambda params: {},
}
NOTIFICATIONS = {
    "cancel": handle_cancel,
}


# ---------------------------------------------------------------- main loop


def handle_line(raw):
    """Handles one line; returns False when the worker should exit."""
    raw = raw.rstrip(b"\r\n")
    if not raw.strip():
        return True
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # bad UTF-8 is a ValueError too
        # A reply with id null would only count as a stray line at the supervisor.
        log("ignoring a line that is not JSON (%s): %r" % (exc.__class__.__name__, raw[:200]))
        return True
    if not isinstance(message, dict):
        log("ignoring a JSON line that is not an object: %r" % raw[:200])
        return True

    method = message.get("method")
    if "id" not in message:
        if method is None:
            log("ignoring a message without id or method: %r" % raw[:200])
        elif method in NOTIFICATIONS:
            NOTIFICATIONS[method](params_of(message) or {})
        else:
            log("ignoring notification %r" % method)
        return True

    request_id = message["id"]
    if method is None:
        # A response: shout sends no requests, so nothing is waiting for it.
        log("ignoring a response for id %s" % json.dumps(request_id))
        return True
    if not isinstance(method, str) or message.get("jsonrpc") != "2.0":
        send(error_response(request_id, INVALID_REQUEST, "not a JSON-RPC 2.0 request"))
        return True
    handler = REQUESTS.get(method)
    if handler is None:
        send(error_response(request_id, METHOD_NOT_FOUND, "method not found: %s" % method))
        return True
    params = params_of(message)
    if params is None:
        send(error_response(request_id, INVALID_PARAMS, "params must be an object"))
        return True
    try:
        send(result_response(request_id, handler(params)))
    except RequestError as err:
        send(error_response(request_id, err.code, err.message, err.data))
    except Exception as exc:  # a bug here must not take the protocol down with it
        log("internal error in %s: %r" % (method, exc))
        send(error_response(request_id, INTERNAL_ERROR, "internal error: %s" % exc))
    return method != "shutdown"


def params_of(message):
    """The params object; {} when absent, None when present but not an object."""
    params = message.get("params", {})
    return params if isinstance(params, dict) else None


def main():
    for raw in sys.stdin.buffer:
        if not handle_line(raw):
            return 0
    return 0  # end of file on stdin: the supervisor is done with us


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
