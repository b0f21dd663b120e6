"""Hot kernels: Numba on the CPU, CuPy on NVIDIA GPUs. Installed as tinylm.kernels."""
