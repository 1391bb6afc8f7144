"""``python -m parkinglot.cli`` (the benchmarks start the server and the CLI this way)."""
from . import main

if __name__ == "__main__":  # pragma: no cover - also imported (harmlessly) by the package's module loop
    main()
