"""Diagnostics: what is supported where (`coverage`), where a NaN came from (`debug_nans`), why a
gradient is None or zero (`explain_grad`, `explain`), and what the backward pass holds
(`memory_report`). Each is off until asked for, and costs nothing while off.
"""

from chainrule.debug.coverage import CoverageRow, CoverageTable, coverage

__all__ = ['coverage', 'CoverageRow', 'CoverageTable']
