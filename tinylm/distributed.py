"""Data-parallel training over MPI (001.compress: distributed training): N processes, one model each.

    every rank: the same model (broadcast from rank 0) and the same global batch (one seeded generator)
    rank r:     forward and backward on its slice of the batch            -> gradients g_r
    all-reduce: g = (1/N) Σ_r g_r, in a few large buckets                  -> the full batch's gradient
    every rank: the same clipping and optimizer step                       -> the same weights
    ZeRO-1:     rank r keeps Adam's moments for its shard of the parameters only, updates that
                shard, and every shard is then broadcast from its owner to every rank

So `mpiexec -n N tinylm train …` sees exactly the batches of `tinylm train …` and computes the same
losses and weights, up to float32 rounding (the mean of N half-batch means is the batch mean when
every rank holds as many examples; a loss averaged over a number of counted tokens that differs
between ranks, as MLM's is, is averaged per rank, as PyTorch's DistributedDataParallel does).
Dropout draws its masks per rank, so with dropout the runs differ (as they do in PyTorch).

The world comes from mpi4py's COMM_WORLD when the process was started by mpiexec (`pip install
"tinylm[mpi]"` brings mpi4py and an MPI); otherwise it is a world of one and nothing here talks.
On a GPU, gradients go through NCCL (cupy.cuda.nccl) when CuPy has it, else through MPI with
copies to the host.
"""
import functools
import importlib.util
import os
import shutil
import subprocess
import sys

import numpy as np

from .processes import python_module

# Set by the MPI launchers: MPICH/Hydra (PMI_*), Open MPI (OMPI_*), Slurm's srun with PMI (PMI_*).
_LAUNCHER_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")
BUCKET_BYTES = 25 * 2 ** 20  # gradients travel in buckets of up to 25 MiB (PyTorch DDP's default)


class World:
    """The processes training together: `rank` (0..size-1) of `size`; rank 0 writes the files."""

    def __init__(self, comm=None):
        self.comm = comm
        self.rank = comm.Get_rank() if comm is not None else 0
        self.size = comm.Get_size() if comm is not None else 1
        self._nccl = None

    @property
    def is_root(self):
        return self.rank == 0

    def __repr__(self):
        return f"World(rank={self.rank}, size={self.size})"

    # --- collectives (all no-ops in a world of one) -----------------------------------------
    def allreduce_mean(self, arrays):
        """Replace every array by its mean over the ranks, in place: a few large messages (the
        arrays are packed into buckets of up to BUCKET_BYTES) instead of one per array."""
        if self.size == 1 or not arrays:
            return
        for bucket in _buckets(arrays):
            xp = _xp(bucket[0])
            flat = xp.concatenate([a.reshape(-1) for a in bucket])
            self._allreduce_sum(flat)
            flat /= self.size
            start = 0
            for a in bucket:
                a[...] = flat[start:start + a.size].reshape(a.shape)
                start += a.size

    def broadcast(self, arrays, root=0):
        """Overwrite every array with rank `root`'s, in place (one message per bucket)."""
        if self.size == 1 or not arrays:
            return
        for bucket in _buckets(arrays):
            flat = _xp(bucket[0]).concatenate([a.reshape(-1) for a in bucket])
            host = flat if _xp(flat) is np else flat.get()
            self.comm.Bcast(host, root=root)
            if host is not flat:
                flat[...] = _xp(flat).asarray(host)
            start = 0
            for a in bucket:
                a[...] = flat[start:start + a.size].reshape(a.shape)
                start += a.size

    def mean(self, value):
        """The mean of a number over the ranks."""
        return value if self.size == 1 else self.comm.allreduce(float(value)) / self.size

    def any(self, flag):
        """True on every rank when `flag` is true on any rank (so all ranks take the same branch)."""
        return bool(flag) if self.size == 1 else bool(self.comm.allreduce(int(bool(flag))))

    def gather(self, obj, root=0):
        """[obj of rank 0, obj of rank 1, ...] on `root` (None elsewhere)."""
        return [obj] if self.size == 1 else self.comm.gather(obj, root=root)

    def _allreduce_sum(self, flat):
        if _xp(flat) is np:
            from mpi4py import MPI

            self.comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
            return
        nccl = self._nccl_communicator()
        if nccl is None:  # MPI with a copy through the host
            from mpi4py import MPI

            host = flat.get()
            self.comm.Allreduce(MPI.IN_PLACE, host, op=MPI.SUM)
            flat[...] = _xp(flat).asarray(host)
            return
        import cupy
        from cupy.cuda import nccl as nccl_module

        kinds = {np.dtype(np.float16): nccl_module.NCCL_FLOAT16, np.dtype(np.float32): nccl_module.NCCL_FLOAT32,
                 np.dtype(np.float64): nccl_module.NCCL_FLOAT64}
        nccl.allReduce(flat.data.ptr, flat.data.ptr, flat.size, kinds[flat.dtype], nccl_module.NCCL_SUM,
                       cupy.cuda.get_current_stream().ptr)

    def _nccl_communicator(self):
        """An NCCL communicator over the ranks (set up once, its id sent by MPI), or None without NCCL."""
        if self._nccl is None:
            try:
                from cupy.cuda import nccl
            except ImportError:
                self._nccl = False
                return None
            uid = self.comm.bcast(nccl.get_unique_id() if self.is_root else None, root=0)
            self._nccl = nccl.NcclCommunicator(self.size, uid, self.rank)
        return self._nccl or None


def _xp(array):
    return np if isinstance(array, np.ndarray) else sys.modules["cupy"]


def _buckets(arrays):
    """The arrays in consecutive groups of one dtype and up to BUCKET_BYTES each."""
    bucket, size = [], 0
    for a in arrays:
        if bucket and (a.dtype != bucket[0].dtype or size + a.nbytes > BUCKET_BYTES):
            yield bucket
            bucket, size = [], 0
        bucket.append(a)
        size += a.nbytes
    if bucket:
        yield bucket


@functools.cache
def world():
    """The world this process belongs to: MPI's when started by mpiexec, else a world of one."""
    if not any(os.environ.get(v) for v in _LAUNCHER_VARIABLES):
        return World()
    try:
        from mpi4py import MPI
    except ImportError:
        raise RuntimeError("this process was started by mpiexec, but mpi4py is not installed: "
                           "pip install 'tinylm[mpi]'") from None
    return World(MPI.COMM_WORLD)


def shard(batch, rank, size):
    """Rank `rank`'s share of a global batch: rows [rank·B/size, (rank+1)·B/size) of every array in
    it (an array, or a tuple, list or dict of them, nested), B the batch's leading size."""
    if size == 1:
        return batch
    if isinstance(batch, dict):
        return {k: shard(v, rank, size) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(shard(v, rank, size) for v in batch)
    rows = len(batch)
    if rows % size:
        raise ValueError(f"a batch of {rows} rows does not split evenly over {size} processes: "
                         f"choose --batch-size as a multiple of {size}")
    share = rows // size
    return batch[rank * share:(rank + 1) * share]


def partition(sizes, parts):
    """ZeRO-1's shards: the owner (0..parts-1) of each of the items of `sizes`, in consecutive groups
    of about equal total size: an item goes to the part its middle falls in, when the items are laid
    end to end and the whole length cut into `parts` equal pieces."""
    total, owners, done = max(sum(sizes), 1), [], 0
    for size in sizes:
        owners.append(min(parts - 1, int((done + size / 2) * parts / total)))
        done += size
    return owners


def mpiexec_path():
    """mpiexec beside this Python (the mpich wheel's, in a virtual environment), else on the PATH, or None."""
    return shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def launch(argv, nproc):
    """Run `tinylm ARGV` on nproc processes with mpiexec (this machine); returns its exit status.

    Each process gets cpus/nproc threads for BLAS, OpenMP and Numba (where the user set none):
    with the default of one thread per CPU in every process, 2 processes on 2 cores ran 6-12
    times slower than one (bench ddp), and with one thread each 1.13-1.22 times faster."""
    mpiexec = mpiexec_path()
    if mpiexec is None:
        raise RuntimeError(f"--nproc {nproc} needs MPI: pip install 'tinylm[mpi]' (mpi4py and mpich), or a "
                           "system MPI with mpiexec on the PATH")
    if importlib.util.find_spec("mpi4py") is None:  # the processes it starts need it
        raise RuntimeError(f"--nproc {nproc} needs mpi4py: pip install 'tinylm[mpi]'")
    threads = str(max(1, (os.cpu_count() or 1) // nproc))
    env = {**{name: threads for name in THREAD_VARIABLES}, **os.environ}
    return subprocess.call([mpiexec, "-n", str(nproc), *python_module("tinylm"), *argv], env=env)
