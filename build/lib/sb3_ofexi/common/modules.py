"""``ModuleList[T]``: torch's ``nn.ModuleList`` as the type checker sees a list of one module type.

At run time it *is* ``nn.ModuleList`` (nothing changes for torch.compile, state dicts or saved
files); to mypy, iterating and indexing give ``T`` instead of ``nn.Module``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Generic, TypeVar, overload

from torch import nn

M = TypeVar("M", bound=nn.Module)

if TYPE_CHECKING:

    class ModuleList(nn.ModuleList, Generic[M]):
        def __init__(self, modules: Iterable[M] | None = None) -> None: ...
        def __iter__(self) -> Iterator[M]: ...
        @overload  # type: ignore[override]
        def __getitem__(self, idx: int) -> M: ...
        @overload
        def __getitem__(self, idx: slice) -> ModuleList[M]: ...
        def __getitem__(self, idx: int | slice) -> M | ModuleList[M]: ...

else:
    ModuleList = nn.ModuleList
