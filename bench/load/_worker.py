"""Entry point of a load worker process: ``python -m bench.load._worker`` (see bench.load.workers).

A module of its own, which the package does not import, so that running it does not import it twice.
"""

from bench.load.workers import main

if __name__ == "__main__":
    main()
