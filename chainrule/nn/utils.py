"""`chainrule.nn.utils`: PyTorch's `torch.nn.utils` path for gradient clipping, so
`nn.utils.clip_grad_norm_(model.parameters(), 1.0)` runs unchanged. The functions live in
`chainrule.optim` (see there)."""

from chainrule.optim import clip_grad_norm_, clip_grad_value_

__all__ = ['clip_grad_norm_', 'clip_grad_value_']
