"""The exported program: ``ExportedProgram``, its graph signature, the checks of a traced program against its spec, the verifier, ``draft_export`` and the program-level ``run_decompositions``."""
