"""What ``ep.module()`` runs: unlifting, the generated input checks, write-back of mutations, and ``unflatten``."""
