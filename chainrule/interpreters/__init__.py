"""Interpreters: one file per transform (reverse mode here; forward mode, batching and staging
join them), each a `Trace`/`Tracer` pair with one rule per primitive."""
