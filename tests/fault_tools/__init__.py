"""Tools that attack the bridge from outside, against real processes and sockets (issue 10):
a frame-aware TCP proxy and HTTP responders (``proxy``), a ``voicebridge serve`` child process
that can be killed and restarted (``serve_process``), sinks that keep what a listener heard and
the exact word count (``listening``). Shared by ``tests/faults`` and
``benchmarks/fault_matrix.py``."""
