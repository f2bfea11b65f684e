"""Outbound HTTP honours the proxy environment (issue 12): a real gateway started with
`HTTP_PROXY`/`HTTPS_PROXY` pointing at a small forward proxy in this file sends its model call
(the local model stand-in) and its Telegram channel's long poll (the local Bot API stand-in)
through that proxy; with `NO_PROXY` naming the host it goes direct.

The stand-ins listen on 127.0.0.1, and loopback gets no exemption of its own: as with curl, a
proxy applies to every host not named in `NO_PROXY` (httpx, like urllib, does not bypass
loopback by itself). So the first test sets `NO_PROXY` empty rather than trusting whatever the
environment running the tests holds, and the second names 127.0.0.1 explicitly.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest

from tests.conftest import TOKEN, wait_until
from tests.fakes.model_server import ModelServer, Stream, openai_text
from tests.fakes.telegram_api import TelegramApi


class ForwardProxy:
    """A plain HTTP forward proxy on 127.0.0.1: takes absolute-URI requests (enough for http://
    upstreams), records `(method, url)` of each, forwards it with `Connection: close` and pipes
    the answer back until either side closes (so event streams and long polls pass as they
    come)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self.seen: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="test-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def urls(self, path_suffix: str) -> list[str]:
        with self._lock:
            return [url for _method, url in self.seen if urlsplit(url).path.endswith(path_suffix)]

    def __enter__(self) -> "ForwardProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stopping.set()
        self._thread.join(5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                data = client.recv(65536)
                if not data:
                    return
                head += data
            head, _, rest = head.partition(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, target, version = request_line.split(" ", 2)
            parts = urlsplit(target)
            if parts.scheme != "http" or not parts.hostname:
                client.sendall(b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\n\r\n")
                return
            with self._lock:
                self.seen.append((method, target))
            headers = [h for h in header_lines
                       if h.split(":", 1)[0].strip().lower() not in ("connection", "proxy-connection")]
            length = next((int(h.split(":", 1)[1]) for h in headers
                           if h.split(":", 1)[0].strip().lower() == "content-length"), 0)
            while len(rest) < length:
                data = client.recv(65536)
                if not data:
                    return
                rest += data
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            upstream = socket.create_connection((parts.hostname, parts.port or 80), timeout=10)
            upstream.settimeout(None)
            upstream.sendall("\r\n".join([f"{method} {path} {version}", *headers, "Connection: close",
                                          "", ""]).encode("latin-1") + rest)
            while not self._stopping.is_set():
                readable, _, _ = select.select([upstream, client], [], [], 0.1)
                if upstream in readable:
                    data = upstream.recv(65536)
                    if not data:
                        return
                    client.sendall(data)
                if client in readable and not client.recv(65536):
                    return  # the client went (an abort, a stop): drop the upstream too
        except OSError:
            return
        finally:
            for sock in (upstream, client):
                if sock is not None:
                    sock.close()


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy() as p:
        yield p


@pytest.fixture
def telegram() -> Iterator[TelegramApi]:
    with TelegramApi() as api:
        yield api


@pytest.fixture
def model() -> Iterator[ModelServer]:
    with ModelServer() as server:
        yield server


def gateway_config(model: ModelServer, telegram: TelegramApi) -> dict:
    return {"gateway": {"auth": {"mode": "token", "token": TOKEN},
                        "http": {"endpoints": {"chatCompletions": {"enabled": True}}}},
            "models": {"providers": {"fake": {"api": "openai-completions", "baseUrl": model.url + "/v1",
                                              "apiKey": "sk-test", "timeoutSeconds": 10,
                                              "models": [{"id": "m1"}]}}},
            "agents": {"defaults": {"model": "fake/m1"}},
            "channels": {"telegram": {"botToken": telegram.token, "apiRoot": telegram.url,
                                      "dmPolicy": "open", "allowFrom": ["*"]}}}


def proxy_env(proxy: ForwardProxy, no_proxy: str) -> dict[str, str]:
    """Both spellings: urllib (which httpx reads) lets the lower-case one win, and an inherited
    value must not decide the test."""
    env: dict[str, str] = {}
    for name, value in (("HTTP_PROXY", proxy.url), ("HTTPS_PROXY", proxy.url), ("ALL_PROXY", ""),
                        ("NO_PROXY", no_proxy)):
        env[name] = env[name.lower()] = value
    return env


def chat_turn(gw: Any) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    try:
        conn.request("POST", "/v1/chat/completions",
                     body=json.dumps({"model": "openclaw", "messages": [{"role": "user", "content": "hi"}]}),
                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        res = conn.getresponse()
        body = json.loads(res.read())
        assert res.status == 200, body
        return body["choices"][0]["message"]["content"]
    finally:
        conn.close()


def test_model_call_and_long_poll_go_through_the_proxy(gateway_factory, proxy, model, telegram):
    model.script(Stream(openai_text(["via", " proxy"])))
    gw = gateway_factory(gateway_config(model, telegram), env=proxy_env(proxy, ""))
    assert telegram.wait_poll_pending(15)
    assert chat_turn(gw) == "via proxy"
    assert proxy.urls("/chat/completions") == [f"{model.url}/v1/chat/completions"]
    assert model.requests and model.requests[0]["headers"]["authorization"] == "Bearer sk-test"
    wait_until(lambda: proxy.urls("/getUpdates"), what="a long poll through the proxy")
    polls = proxy.urls("/getUpdates")
    assert all(url.startswith(f"{telegram.url}/bot") for url in polls)
    assert proxy.urls("/getMe")


def test_no_proxy_naming_the_host_goes_direct(gateway_factory, proxy, model, telegram):
    model.script(Stream(openai_text(["direct"])))
    gw = gateway_factory(gateway_config(model, telegram), env=proxy_env(proxy, "example.com,127.0.0.1"))
    assert telegram.wait_poll_pending(15)
    assert chat_turn(gw) == "direct"
    assert telegram.calls("getUpdates") and len(model.requests) == 1
    assert proxy.seen == []
