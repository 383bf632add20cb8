"""Diagnostics: what is supported where (`coverage`), where a NaN came from (`debug_nans`), why a
gradient is None or zero (`explain_grad`, `explain`), and what the backward pass holds
(`memory_report`). Each is off until asked for, and costs nothing while off.
"""

from chainrule.debug.coverage import CoverageRow, CoverageTable, coverage
from chainrule.debug.nans import Config, config, debug_nans

__all__ = ['coverage', 'CoverageRow', 'CoverageTable', 'debug_nans', 'config', 'Config']
