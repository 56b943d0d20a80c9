"""An MCP client from the `mcp` package (PyPI) driving `purser mcp serve` over stdio.

usage: client.py PURSER [serve arguments...]
       client.py --kept PURSER KEEPING-TEAM OTHER-TEAM GATE
Prints one JSON object per step on stdout, for the test to check. The first session is the
package's default (`auto`: `server/discover`, else `initialize`); the second forces the
`initialize` handshake at an older revision, 2025-03-26.
With --kept, two sessions call the same tools again and again, and show each call's
`_meta` (where `purser/run` says which worker ran it): one under KEEPING-TEAM (made with
--reuse-untrusted), one under OTHER-TEAM. GATE is a path the `scripted` plugin waits for,
which never appears: a call with it runs until cancelled.
"""
import json
import os
import sys

import anyio
import mcp.client.session
from mcp import Client
from mcp.client.stdio import StdioServerParameters


def show(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


def result(answer):
    return {
        "isError": answer.is_error,
        "text": " ".join(getattr(item, "text", "") for item in answer.content),
        "structured": answer.structured_content,
        "meta": answer.meta,
    }


def servers(purser, *args):
    # The SDK gives a server only a few variables of its own; Purser's are passed on.
    env = {name: value for name, value in os.environ.items() if name.startswith("PURSER_")}
    return StdioServerParameters(command=purser, args=list(args), env=env)


async def main():
    server = servers(sys.argv[1], *sys.argv[2:])
    progress = []

    async def on_progress(done, total, message):
        progress.append([done, total, message])

    async with Client(server, read_timeout_seconds=120) as client:
        show("revision", version=client.protocol_version, server=client.server_info and client.server_info.name)
        tools = await client.list_tools()
        show("list", tools=sorted(tool.name for tool in tools.tools),
             schemas={tool.name: tool.input_schema for tool in tools.tools})
        answer = await client.call_tool("time.get_current_time", {"timezone": "Europe/Paris"})
        show("call", **result(answer))
        answer = await client.call_tool("time.get_current_time", {"timezone": 7})
        show("bad-input", **result(answer))
        answer = await client.call_tool("scripted", {"sleepMs": 100, "output": {"done": True}},
                                        progress_callback=on_progress)
        show("plugin", **result(answer))
        with anyio.move_on_after(4) as scope:
            await client.call_tool("scripted", {"sleepMs": 120000})
        show("cancelled", cancelled=scope.cancelled_caught)
        # The team's credits run out: the next calls are denied, as tool errors.
        answers = []
        for _ in range(4):
            answers.append(result(await client.call_tool("time.get_current_time", {"timezone": "UTC"})))
        show("exhausted", answers=answers)

    # The package offers its newest handshake revision, read when `initialize` is sent; an
    # older client offers an older one. Calls that cost no credits: the team has none left.
    mcp.client.session.LATEST_HANDSHAKE_VERSION = "2025-03-26"
    async with Client(server, read_timeout_seconds=120, mode="legacy") as client:
        tools = await client.list_tools()
        answer = await client.call_tool("time.get_current_time", {"timezone": 7})
        show("legacy", version=client.protocol_version, tools=len(tools.tools), **result(answer))


async def cancel_once_started(client, gate):
    """Calls `scripted` with GATE, and cancels the call once the plugin says it started."""
    async with anyio.create_task_group() as group:
        async def cancel():
            with anyio.fail_after(60):
                while not os.path.exists(gate + ".started"):
                    await anyio.sleep(0.05)
            group.cancel_scope.cancel()

        group.start_soon(cancel)
        await client.call_tool("scripted", {"gate": gate})


async def gone(pid):
    """Whether process PID ends within a minute."""
    with anyio.move_on_after(60):
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            await anyio.sleep(0.05)
    return False


async def kept(purser, keeping, other, gate):
    async with Client(servers(purser, "mcp", "serve", "--team", keeping), read_timeout_seconds=120) as client:
        calls = [result(await client.call_tool("scripted", {"whoami": True})) for _ in range(3)]
        show("trusted", calls=calls)
        # A cancelled call on the kept worker ends that worker; the next call gets a new one.
        await cancel_once_started(client, gate)
        pid = ((calls[-1]["meta"] or {}).get("purser/run") or {}).get("worker", {}).get("pid")
        show("cancelled", pid=pid, gone=pid is not None and await gone(pid))
        calls = [result(await client.call_tool("scripted", args)) for args in ({"whoami": True}, {"fail": "no"})]
        show("after-cancel", calls=calls)
        calls = [result(await client.call_tool("time.get_current_time", {"timezone": "UTC"})) for _ in range(2)]
        show("untrusted-kept", calls=calls)
    async with Client(servers(purser, "mcp", "serve", "--team", other), read_timeout_seconds=120) as client:
        calls = [result(await client.call_tool("time.get_current_time", {"timezone": "UTC"})) for _ in range(2)]
        show("untrusted-fresh", calls=calls)


if sys.argv[1] == "--kept":
    anyio.run(kept, *sys.argv[2:6])
else:
    anyio.run(main)
