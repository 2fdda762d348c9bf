"""Lock targets bundled with lockfuzz (installed as ``lockfuzz.targets``)."""
