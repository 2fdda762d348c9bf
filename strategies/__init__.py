"""Hypothesis strategies for lockfuzz (installed as ``lockfuzz.strategies``)."""
