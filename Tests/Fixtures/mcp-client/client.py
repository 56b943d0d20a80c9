"""An MCP client from the `mcp` package (PyPI) driving `purser mcp serve` over stdio.

usage: client.py PURSER [serve arguments...]
Prints one JSON object per step on stdout, for the test to check. The first session is the
package's default (`auto`: `server/discover`, else `initialize`); the second forces the
`initialize` handshake at an older revision, 2025-03-26.
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
    }


async def main():
    # The SDK gives a server only a few variables of its own; Purser's are passed on.
    purser = {name: value for name, value in os.environ.items() if name.startswith("PURSER_")}
    server = StdioServerParameters(command=sys.argv[1], args=sys.argv[2:], env=purser)
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


anyio.run(main)
