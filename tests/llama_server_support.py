"""Real ``python -m llama_cpp.server`` processes serving the embedded SmolLM2, for the openai backend's end-to-end tests."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from sparring.errors import ConfigError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def llama_servers(folder: Path, count: int, *options: str) -> Iterator[list[tuple[str, Path]]]:
    """``count`` servers (base URL, log file), each answering ``/models``; skips without the server extra."""
    from sparring.models.llamacpp import embedded_model_path

    for module in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"needs {module}: pip install 'llama-cpp-python[server]'")
    try:
        gguf = embedded_model_path()
    except ConfigError as error:
        pytest.skip(str(error))
    started: list[tuple[subprocess.Popen[bytes], str, Path]] = []
    try:
        for k in range(count):
            port, log_path = free_port(), folder / f"server{k}.log"
            with open(log_path, "wb") as log_file:
                process = subprocess.Popen(
                    [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                     "--port", str(port), *options],
                    stdout=log_file, stderr=subprocess.STDOUT,
                )
            started.append((process, f"http://127.0.0.1:{port}/v1", log_path))
        deadline = time.monotonic() + 120
        for process, url, log_path in started:
            _wait_until_serving(process, url, log_path, deadline)
        yield [(url, log_path) for _, url, log_path in started]
    finally:
        for process, _, _ in started:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_serving(process: subprocess.Popen[bytes], url: str, log_path: Path, deadline: float) -> None:
    while True:
        if process.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"llama_cpp.server did not answer in 120 s: {log_path.read_text()[-2000:]}")
        time.sleep(0.25)
