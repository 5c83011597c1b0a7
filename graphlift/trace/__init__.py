"""Dispatch-level tracing for export: TraceTensor, TraceMode, the Recorder."""
