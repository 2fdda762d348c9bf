"""What a failure becomes: ``_report`` (the text a person reads: the timeline, Perfetto) and
``_failure_file`` (the versioned file that replays it anywhere). Private: the public API is
``lockfuzz``.
"""
