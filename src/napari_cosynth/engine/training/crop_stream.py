"""Which crops each training step reads: one seeded stream of crop keys, the same on any number of processes.

Reproducibility comes from deriving randomness rather than carrying it. A run reads one stream of
crops: position ``p`` of the stream is a sample drawn from epoch permutations of the dataset (each
permutation seeded with ``(seed, epoch)``), cropped, rotated, flipped and given a prompt by an RNG
seeded with ``(seed, p)``. Step ``s`` of a run with global batch ``G`` reads positions
``sG .. sG + G - 1`` (offset by where a resumed run's checkpoint stopped), and rank ``r`` of ``W``
takes its ``G / W`` consecutive slots. A resumed run therefore sees exactly the batches an
uninterrupted run would, a run on W processes sees the same global batches as one process with a W
times larger batch, and a run resumed with another batch size continues the same stream.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

# Tag mixed into the order's seed so this stream never coincides with other uses of the run seed.
_ORDER_STREAM = 0x0D_E4


def order_index(n: int, seed: int, position: int, repeat: int = 1) -> int:
    """Which sample fills global position ``position`` of a run's data stream.

    The stream is a sequence of epochs, each a permutation of ``repeat`` copies of ``range(n)``
    drawn from ``(seed, epoch)``, so every sample is seen ``repeat`` times per epoch.
    """
    epoch, within = divmod(position, n * repeat)
    return int(_permutation(n * repeat, seed, epoch)[within]) % n


@functools.lru_cache(maxsize=4)
def _permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, _ORDER_STREAM, epoch]).permutation(n)


def batch_keys(
    n: int, seed: int, first_position: int, batch_size: int, world_size: int = 1, rank: int = 0,
    repeat: int = 1,
) -> list[tuple[int, int]]:
    """The crop keys ``(sample index, stream position)`` rank ``rank`` reads for one step.

    The step's global batch is the ``batch_size * world_size`` stream positions from
    ``first_position``; rank ``r`` takes ``batch_size`` consecutive ones starting at
    ``first_position + r * batch_size``. Pass the keys to :class:`.data.CropDataset`.
    """
    start = first_position + rank * batch_size
    return [(order_index(n, seed, p, repeat), p) for p in range(start, start + batch_size)]


class StepBatchSampler(torch.utils.data.Sampler):
    """Batches of crop keys for steps ``start .. stop - 1`` of one rank (see :func:`batch_keys`).

    Used as a DataLoader ``batch_sampler``. Step ``start`` begins at stream position
    ``start_position`` and every step advances it by the global batch, so the keys depend only on
    the step: worker processes and resuming do not change what a step sees.
    """

    def __init__(self, n, seed, start, stop, start_position, batch_size, world_size=1, rank=0, repeat=1):
        self.n, self.seed, self.repeat = n, seed, repeat
        self.start, self.stop, self.start_position = start, stop, start_position
        self.batch_size, self.world_size, self.rank = batch_size, world_size, rank

    def position(self, step: int) -> int:
        """Stream position of the first crop of ``step``'s global batch."""
        return self.start_position + (step - self.start) * self.batch_size * self.world_size

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self):
        for step in range(self.start, self.stop):
            yield batch_keys(
                self.n, self.seed, self.position(step), self.batch_size, self.world_size, self.rank,
                self.repeat,
            )
