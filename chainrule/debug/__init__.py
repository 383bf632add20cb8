"""Diagnostics: what is supported where (`coverage`), where a NaN came from (`debug_nans`), why a
gradient is None or zero (`explain_grad`, `explain`), and what the backward pass holds
(`memory_report`). Each is off until asked for, and costs nothing while off.
"""

from chainrule.debug.coverage_table import CoverageRow, CoverageTable, coverage
from chainrule.debug.hooks import record_sources
from chainrule.debug.nans import Config, config, debug_nans
from chainrule.debug.grad_explain import Explanation, InputReport, explain, explain_grad
from chainrule.debug.stepping import MemoryReport, Step, memory_report

__all__ = ['coverage', 'CoverageRow', 'CoverageTable', 'debug_nans', 'config', 'Config',
           'record_sources', 'explain_grad', 'explain', 'Explanation', 'InputReport',
           'memory_report', 'MemoryReport', 'Step']
