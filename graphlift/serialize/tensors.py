"""Real tensors (parameters, buffers, constants, example inputs) in safetensors.

safetensors refuses tensors that share memory and stores only contiguous
data, but a program's state may hold tied weights, views and non-contiguous
tensors. So each distinct *storage* is stored once, as a flat 1-D tensor
(``"t0"``, ``"t1"``... in order of first use), and the JSON records for each
tensor how it views its storage: dtype, sizes, strides, storage offset,
``requires_grad`` and whether it is an ``nn.Parameter``. Loading rebuilds
the same views over the same storages, so sharing and layout survive.

Nothing declared in the JSON is trusted: each view must lie inside its
storage, every stored storage must be used, and the storage table must agree
with what safetensors holds (dtype and length).
"""

from __future__ import annotations

from typing import Any

import torch

from graphlift.errors import ArchiveError, SerializationError
from graphlift.serialize.reader import Data
from graphlift.serialize.values import DTYPE_NAMES, DTYPES

_MAX_SIZE = 2**62


class StorageWriter:
    """Collects distinct storages while tensors are encoded."""

    def __init__(self) -> None:
        self.flat: dict[str, torch.Tensor] = {}
        self._keys: dict[int, str] = {}
        self._users: dict[str, list[torch.Tensor]] = {}

    def encode(self, tensor: torch.Tensor, where: str) -> dict[str, Any]:
        if tensor.device.type == "meta":
            raise SerializationError(f"cannot save {where}: it is a meta tensor without data")
        if tensor.layout is not torch.strided or type(tensor) not in (
            torch.Tensor,
            torch.nn.Parameter,
        ):
            raise SerializationError(f"cannot save {where}: only dense tensors can be saved")
        storage = tensor.untyped_storage()
        key = self._keys.setdefault(storage._cdata, f"t{len(self._keys)}")
        self._users.setdefault(key, []).append(tensor)
        return {
            "storage": key,
            "dtype": DTYPE_NAMES[tensor.dtype],
            "sizes": list(tensor.shape),
            "strides": list(tensor.stride()),
            "storage_offset": tensor.storage_offset(),
            "requires_grad": tensor.requires_grad,
            "parameter": isinstance(tensor, torch.nn.Parameter),
        }

    def storages(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """(the JSON storage table, the flat tensors for safetensors)."""
        table: dict[str, Any] = {}
        flat: dict[str, torch.Tensor] = {}
        for key, users in self._users.items():
            dtypes = {t.dtype for t in users}
            dtype = dtypes.pop() if len(dtypes) == 1 else torch.uint8
            storage = users[0].untyped_storage()
            if storage.nbytes() % dtype.itemsize:
                dtype = torch.uint8
            length = storage.nbytes() // dtype.itemsize
            view = torch.empty(0, dtype=dtype).set_(storage, 0, (length,), (1,))
            flat[key] = view.detach().cpu()
            table[key] = {"dtype": DTYPE_NAMES[dtype], "length": length}
        return table, flat


class StorageReader:
    """Checks the storage table against safetensors and rebuilds tensor views."""

    def __init__(self, table: Data, flat: dict[str, torch.Tensor]) -> None:
        self._storages: dict[str, torch.UntypedStorage] = {}
        self._used: set[str] = set()
        self._made: dict[str, torch.Tensor] = {}  # identical entries: one object (tied weights)
        for key, entry in table.entries():
            entry.fields(("dtype", "length"))
            dtype = entry["dtype"].choice(DTYPES)
            length = entry["length"].int()
            tensor = flat.get(key)
            if tensor is None:
                raise entry.fail(f"storage {key[:40]!r} is missing from tensors.safetensors")
            if tensor.dtype != dtype or tuple(tensor.shape) != (length,):
                raise entry.fail(
                    f"storage {key[:40]!r} is {dtype} of length {length} in program.json but "
                    f"{tensor.dtype} of shape {list(tensor.shape)} in tensors.safetensors"
                )
            self._storages[key] = tensor.untyped_storage()
        extra = sorted(set(flat) - set(self._storages))
        if extra:
            raise ArchiveError(
                f"tensors.safetensors holds tensors program.json does not list: {extra[:5]}"
            )

    def decode(self, data: Data) -> torch.Tensor:
        data.fields(("storage", "dtype", "sizes", "strides", "storage_offset", "requires_grad",
                     "parameter"))  # fmt: skip
        identity = repr(data.value)
        if identity in self._made:
            return self._made[identity]
        key = data["storage"].str()
        storage = self._storages.get(key)
        if storage is None:
            raise data.fail(f"unknown storage {key[:40]!r}")
        self._used.add(key)
        dtype = data["dtype"].choice(DTYPES)
        sizes = [_size(item) for item in data["sizes"].items()]
        strides = [_size(item) for item in data["strides"].items(len(sizes))]
        offset = _size(data["storage_offset"])
        if dtype.itemsize == 0 or not _fits(
            sizes, strides, offset, storage.nbytes() // dtype.itemsize
        ):
            raise data.fail(
                f"the view (sizes {sizes}, strides {strides}, offset {offset}) does not fit in "
                f"storage {key!r} of {storage.nbytes()} bytes"
            )
        tensor = torch.empty(0, dtype=dtype).set_(storage, offset, sizes, strides)
        requires_grad = data["requires_grad"].bool()
        if requires_grad and not (tensor.is_floating_point() or tensor.is_complex()):
            raise data["requires_grad"].fail(f"a {dtype} tensor cannot require grad")
        if data["parameter"].bool():
            tensor = torch.nn.Parameter(tensor, requires_grad=requires_grad)
        else:
            tensor.requires_grad_(requires_grad)
        self._made[identity] = tensor
        return tensor

    def check_all_used(self) -> None:
        unused = sorted(set(self._storages) - self._used)
        if unused:
            raise ArchiveError(f"storages {unused[:5]} are stored but no tensor uses them")


def _size(item: Data) -> int:
    value = item.int()
    if not 0 <= value < _MAX_SIZE:
        raise item.fail(f"size/stride/offset {value} out of range")
    return value


def _fits(sizes: list[int], strides: list[int], offset: int, elements: int) -> bool:
    if any(size == 0 for size in sizes):
        return offset <= elements
    last = offset + sum((size - 1) * stride for size, stride in zip(sizes, strides))
    return last < elements
