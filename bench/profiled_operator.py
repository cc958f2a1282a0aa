"""`gamevm-operator run` under cProfile (bench only): set GAMEVM_BENCH_PROFILE=<file.prof>.

The profile covers the event-loop thread (handlers, kopf, parsing); the Kubernetes
client's worker threads are not profiled. Stats are written when the operator exits
(SIGTERM makes kopf stop cleanly, so the file is complete).
"""

import cProfile
import os
import signal
import sys

from gamevm.cli import main

if __name__ == "__main__":
    out = os.environ.get("GAMEVM_BENCH_PROFILE", "operator.prof")
    profiler = cProfile.Profile()
    # kopf handles SIGTERM itself; SIGINT too. Either way main() returns and we dump.
    signal.signal(signal.SIGUSR1, lambda *_: profiler.dump_stats(out))
    profiler.enable()
    try:
        code = main(["run", *sys.argv[1:]])
    finally:
        profiler.disable()
        profiler.dump_stats(out)
    sys.exit(code)
