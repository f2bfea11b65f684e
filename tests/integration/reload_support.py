"""Helpers for the reload and restart tests: a gateway whose port comes from its config file
(a --port flag would beat every config change of gateway.port), config edits on the real
file, and polling through a real WebSocket client."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import OPENCLAW, TOKEN, GatewayProcess, free_port, open_client, wait_until

FAST_RELOAD = {"debounceMs": 50, "cooldownMs": 0}


class ConfigPortGateway(GatewayProcess):
    """`openclaw gateway` without --port: it listens where gateway.port says, also after a
    restart moved it."""

    def start(self, wait_ready: bool = True) -> "ConfigPortGateway":
        self.proc = subprocess.Popen([OPENCLAW, "gateway", *self.args], env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=open(self.stdout_path, "wb"),
                                     stderr=open(self.stderr_path, "wb"), start_new_session=True)
        if wait_ready:
            self.wait_ready()
        return self

    # --- the config file ------------------------------------------------------------------

    def read_config(self) -> dict:
        return json.loads(self.config_path.read_text())

    def edit(self, change, rename: bool = False) -> dict:
        """Apply `change(doc)` to the file in place, or as an editor's rename-save."""
        doc = self.read_config()
        change(doc)
        write_text(self.config_path, json.dumps(doc, indent=2), rename)
        return doc

    # --- observing it -----------------------------------------------------------------------

    def request_payload(self, method: str, params: dict | None = None) -> Any:
        client = open_client(self.url)
        try:
            res = client.request(method, params or {})
            assert res["ok"], res
            return res["payload"]
        finally:
            client.close()

    def reload_status(self) -> dict:
        return self.request_payload("health", {"probe": True})["configReload"]

    def boot_and_pid(self) -> tuple[str, int]:
        client = open_client(self.url)
        try:
            status = client.request("status")["payload"]
            return client.hello["server"]["bootId"], status["pid"]
        finally:
            client.close()

    def wait_reload_after(self, before: Any, timeout: float = 5.0) -> dict:
        """The configReload status once lastReloadAt moved past `before`."""
        def moved() -> dict | None:
            status = self.reload_status()
            return status if status["lastReloadAt"] != before else None
        return wait_until(moved, timeout, what="configReload.lastReloadAt to move")

    def wait_new_boot(self, boot_id: str, timeout: float = 10.0) -> str:
        def new_boot() -> str | None:
            try:
                if httpx.get(f"{self.http}/readyz", timeout=1).status_code != 200:
                    return None
                current, _ = self.boot_and_pid()
            except Exception:  # noqa: BLE001 - restarting: refused or closed
                return None
            return current if current != boot_id else None
        return wait_until(new_boot, timeout, what="a new bootId")


def write_text(path: Path, text: str, rename: bool = False) -> None:
    if rename:  # what vim, VS Code and most editors do: write a temp file, rename it over
        tmp = path.with_name(f".{path.name}.swp")
        tmp.write_text(text)
        os.replace(tmp, path)
    else:
        path.write_text(text)


def config(port: int, **reload: Any) -> dict:
    return {"gateway": {"port": port, "auth": {"mode": "token", "token": TOKEN},
                        "reload": {**FAST_RELOAD, **reload}}}


def launch_started(gw: GatewayProcess) -> ConfigPortGateway:
    """Start a gateway the fixture made with start=False, as a ConfigPortGateway."""
    gw.__class__ = ConfigPortGateway  # same object: the fixture still stops it
    return gw.start()


def launch(gateway_factory, cfg: dict | None = None, name: str | None = None,
           **reload: Any) -> ConfigPortGateway:
    """Start a ConfigPortGateway through the fixture, which stops it at the end of the test."""
    cfg = cfg or config(free_port(), **reload)
    return launch_started(gateway_factory(cfg, start=False, port=cfg["gateway"]["port"], name=name))
