"""python -m bench [--quick] [--markdown FILE]            the solver benchmark (bench/run.py)
python -m bench --api [--postgres] [--markdown FILE]   the HTTP API benchmark (bench/api.py)"""

import sys
from pathlib import Path


def _markdown(argv: list[str]) -> Path | None:
    if "--markdown" in argv and argv.index("--markdown") + 1 < len(argv):
        return Path(argv[argv.index("--markdown") + 1])
    return None


if "--api" in sys.argv:
    from bench.api import main as api_main

    backends = ("sqlite", "postgresql") if "--postgres" in sys.argv else ("sqlite",)
    sys.exit(api_main(backends=backends, markdown=_markdown(sys.argv)))

from bench.run import main

sys.exit(main(quick="--quick" in sys.argv, markdown=_markdown(sys.argv)))
