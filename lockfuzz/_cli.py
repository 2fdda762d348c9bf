"""The ``lockfuzz`` command line."""


def main() -> int:
    raise SystemExit("lockfuzz: the command line is not built yet")
