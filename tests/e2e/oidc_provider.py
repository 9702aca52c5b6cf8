"""A real authorization server for the oauth tests: tests/e2e/oidc/provider.mjs (the `oidc-provider`
package) run by Node on loopback ports.

Its node_modules are installed with `npm ci` from the committed lockfile into a cache directory
keyed by that lockfile (`HANDOFF_NODE_CACHE`, default ~/.cache/handoff-node), once. Without `node`
or `npm` the tests fail, saying so: they never skip silently.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

SOURCE = Path(__file__).with_name("oidc")
START_SECONDS = 30


@dataclass(frozen=True)
class Provider:
    issuer: str
    rogue_issuer: str  # same keys, another `iss`

    def token(self, client: str, *, resource: str, scope: str = "handoff", issuer: str | None = None) -> dict[str, Any]:
        """A client_credentials grant for `client`, bound to `resource`: the token response."""
        response = httpx.post(
            f"{issuer or self.issuer}/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client,
                "client_secret": f"secret-{client}",
                "scope": scope,
                "resource": resource,
            },
            timeout=10,
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def access_token(self, client: str, **kwargs: Any) -> str:
        token: str = self.token(client, **kwargs)["access_token"]
        return token

    def jwks(self) -> dict[str, Any]:
        keys: dict[str, Any] = httpx.get(f"{self.issuer}/jwks", timeout=10).json()
        return keys


def _required(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        pytest.fail(f"`{tool}` is not on PATH: the oauth tests run a real authorization server on Node (20.19+)")
    return found


def installed_dir() -> Path:
    """A directory with provider.mjs beside its node_modules, installed once per lockfile."""
    lock = (SOURCE / "package-lock.json").read_bytes()
    script = (SOURCE / "provider.mjs").read_bytes()
    cache = Path(os.environ.get("HANDOFF_NODE_CACHE") or Path.home() / ".cache" / "handoff-node")
    target = cache / f"oidc-provider-{hashlib.sha256(lock).hexdigest()[:16]}"
    if not (target / "node_modules" / "oidc-provider" / "package.json").is_file():
        npm = _required("npm")
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".oidc-install.", dir=cache))
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(SOURCE / name, staging / name)
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
            cwd=staging,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            pytest.fail(f"npm ci for the test authorization server failed:\n{done.stderr[-2000:]}")
        try:
            staging.rename(target)  # atomic: a parallel run either wins or finds it there
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    # The script is resolved against its own directory, so it runs from beside node_modules; each
    # version of it gets its own name there, written atomically.
    named = target / f"provider-{hashlib.sha256(script).hexdigest()[:16]}.mjs"
    if not named.is_file():
        partial = named.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(script)
        partial.replace(named)
    return named


@contextmanager
def oidc_provider(resource: str) -> Iterator[Provider]:
    node = _required("node")
    script = installed_dir()
    process = subprocess.Popen(
        [node, str(script), resource],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    stderr: list[str] = []
    drain = threading.Thread(target=lambda: stderr.extend(process.stderr or ()), daemon=True)
    drain.start()
    first: list[str] = []
    reader = threading.Thread(target=lambda: first.append(process.stdout.readline() if process.stdout else ""))
    reader.start()
    reader.join(timeout=START_SECONDS)
    try:
        if not first or not first[0].strip():
            process.kill()
            drain.join(timeout=5)
            pytest.fail("the test authorization server did not start:\n" + "".join(stderr[-30:]))
        ready = json.loads(first[0])
        yield Provider(issuer=ready["issuer"], rogue_issuer=ready["rogue_issuer"])
    finally:
        if process.stdin is not None:
            process.stdin.close()  # the script exits when its stdin ends
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        drain.join(timeout=5)
        reader.join(timeout=5)
        process.stdout.close()
        process.stderr.close()
