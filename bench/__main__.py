import sys

from bench.run import main

sys.exit(main(quick="--quick" in sys.argv))
