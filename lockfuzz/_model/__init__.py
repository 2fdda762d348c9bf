"""What is tested: programs, targets and what they promise.

``_program`` and ``_program_text`` (programs as data and as text), ``_target`` and ``_registry``
(the target protocol, bundled names), ``_capabilities`` (the promises the oracles hold a target
to), ``_status`` (statuses, levels, marks) and ``_errors``. Every other layer reads these; they
read none of the others. Private: the public API is ``lockfuzz``.
"""
