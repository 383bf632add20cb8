"""`chainrule.numpy.fft`: differentiable `np.fft` (UNFINISHED: being built)."""
