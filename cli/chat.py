"""`openclaw chat "<message>"` (cli-config §4.14): one chat.send, then the run's `chat` events
(protocol §7.3) streamed to stdout until the run ends.

The run id is the idempotencyKey we send, so events can be matched even when they arrive
before the chat.send response (the client keeps them meanwhile).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from typing import Any

import click

from cli.client import GatewayClient, RpcError, connection_options, with_client
from cli.output import EXIT_FAIL, CliError, emit_json, warn

DEFAULT_SESSION = "agent:main:main"
CONNECT_TIMEOUT_MS = 10000  # connect, handshake and each call; --timeout bounds the run
ABORT_GRACE_S = 3.0  # how long to wait for the run's `aborted` event after chat.abort
EXIT_INTERRUPTED = 130


class ChatRun:
    """The text of one run as its events arrive; optionally echoed to stdout as it grows."""

    def __init__(self, run_id: str, session_key: str, stream: bool) -> None:
        self.run_id, self.session_key, self.stream = run_id, session_key, stream
        self.text = ""
        self.printed = ""
        self.state: str | None = None
        self.error: str | None = None

    def apply(self, payload: dict) -> None:
        self.session_key = payload.get("sessionKey") or self.session_key
        state = payload.get("state")
        if state == "delta":
            delta = str(payload.get("deltaText") or "")
            self._show(delta if payload.get("replace") else self.text + delta)
        elif state in ("final", "aborted", "error"):
            final_text = _message_text(payload.get("message"))
            if final_text is not None:
                self._show(final_text)
            self.state, self.error = state, payload.get("errorMessage")

    def _show(self, text: str) -> None:
        self.text = text
        if not self.stream:
            return
        if text.startswith(self.printed):
            click.echo(text[len(self.printed):], nl=False)
        else:
            # The run rewrote text already on the terminal (`replace`); printed text cannot
            # be taken back, so the new version starts on a line of its own.
            click.echo("\n" + text, nl=False)
        self.printed = text

    def document(self) -> dict:
        return {"runId": self.run_id, "sessionKey": self.session_key, "text": self.text,
                "state": self.state or "aborted"}


def _message_text(message: Any) -> str | None:
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        return None
    return "".join(p.get("text", "") for p in message["content"]
                   if isinstance(p, dict) and p.get("type") == "text")


async def _next_frame(client: GatewayClient, interrupted: asyncio.Event, seconds: float) -> dict | None:
    """The next event frame, or None on Ctrl-C or when `seconds` have passed."""
    if interrupted.is_set() or seconds <= 0:
        return None
    read = asyncio.ensure_future(client.next_event())
    stop = asyncio.ensure_future(interrupted.wait())
    await asyncio.wait({read, stop}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    for task in (read, stop):
        if not task.done():
            task.cancel()  # an unread frame stays queued in the connection
    # A frame read just as Ctrl-C came is still used: it may be the run's final event.
    return read.result() if read.done() and not read.cancelled() else None


async def _follow(client: GatewayClient, run: ChatRun, interrupted: asyncio.Event, deadline: float) -> None:
    """Apply this run's chat events until it ends, Ctrl-C, or `deadline` (loop time)."""
    loop = asyncio.get_running_loop()
    while run.state is None:
        frame = await _next_frame(client, interrupted, deadline - loop.time())
        if frame is None:
            return
        payload = frame.get("payload")
        if not isinstance(payload, dict):
            payload = {}
        if frame.get("event") == "chat" and payload.get("runId") == run.run_id:
            run.apply(payload)


async def _abort(client: GatewayClient, run: ChatRun) -> None:
    """chat.abort for the run, then a short wait for its `aborted` event (partial text)."""
    try:
        await client.call("chat.abort", {"sessionKey": run.session_key, "runId": run.run_id})
    except (RpcError, CliError, asyncio.TimeoutError) as exc:
        warn(f"chat.abort failed: {exc}")
        return
    loop = asyncio.get_running_loop()
    await _follow(client, run, asyncio.Event(), loop.time() + ABORT_GRACE_S)


async def _chat(client: GatewayClient, run: ChatRun, message: str, timeout_ms: int) -> str:
    """Send, follow, abort when needed; "done", "timeout" or "interrupted"."""
    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()
    loop.add_signal_handler(signal.SIGINT, interrupted.set)
    deadline = loop.time() + timeout_ms / 1000
    client.keep_events = True
    ack = await client.call("chat.send", {"sessionKey": run.session_key, "message": message,
                                          "idempotencyKey": run.run_id})
    run.run_id = (ack or {}).get("runId") or run.run_id
    await _follow(client, run, interrupted, deadline)
    if run.state is not None:
        return "done"
    outcome = "interrupted" if interrupted.is_set() else "timeout"
    await _abort(client, run)
    return outcome


def _finish(run: ChatRun, outcome: str, as_json: bool, timeout_ms: int) -> int:
    if as_json:
        emit_json(run.document())
    elif run.printed or run.state == "final":
        click.echo("")
    if outcome == "timeout":
        warn(f"Error: run {run.run_id} did not end within {timeout_ms}ms; sent chat.abort")
        return EXIT_FAIL
    if outcome == "interrupted":
        warn(f"Interrupted: sent chat.abort for run {run.run_id}")
        return EXIT_INTERRUPTED
    if run.state == "error":
        warn(f"Error: {run.error or 'the run failed'}")
    elif run.state == "aborted":
        warn(f"Run {run.run_id} was aborted")
    return 0 if run.state == "final" else EXIT_FAIL


@click.command()
@click.argument("message")
@click.option("--session", "session_key", default=DEFAULT_SESSION, show_default=True,
              help="Session key to talk in.")
@click.option("--json", "as_json", is_flag=True,
              help='Print nothing while streaming, then {"runId", "sessionKey", "text", "state"}.')
@connection_options(timeout_default=600000, timeout_help="Bound on the whole run, in ms; past it "
                    "the run is aborted (exit 1).")
def chat(message: str, session_key: str, as_json: bool, timeout_ms: int, **conn: Any) -> None:
    """Send MESSAGE to the agent and stream the reply.

    Exit codes: 0 final reply, 1 run error, RPC error (e.g. no model provider) or timeout,
    69 unreachable, 77 unauthorized, 130 Ctrl-C (the run is aborted).
    """
    run = ChatRun(str(uuid.uuid4()), session_key, stream=not as_json)
    conn = {**conn, "timeout_ms": min(timeout_ms, CONNECT_TIMEOUT_MS)}
    try:
        outcome = with_client(conn, as_json, lambda client: _chat(client, run, message, timeout_ms))
    except KeyboardInterrupt:  # Ctrl-C before the run was sent: nothing to abort
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(_finish(run, outcome, as_json, timeout_ms))
