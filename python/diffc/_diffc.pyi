# Type stubs of the Rust extension `diffc._diffc`. Users call it through `diffc` (`__init__.py`).

from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

_Array = np.ndarray
_Net = Union[Mapping[str, _Array], Callable[[str, List[_Array], List[str]], List[_Array]]]

def check(
    text: str, path: str, process: Optional[str] = None
) -> Tuple[Optional[Process], List[Dict[str, Any]], str]: ...

class Process:
    @property
    def name(self) -> str: ...
    @property
    def time(self) -> str: ...
    @property
    def time_domain(self) -> Tuple[float, float, float]: ...
    @property
    def params(self) -> List[str]: ...
    def check_sampler_params(self, sampler: str, names: List[str]) -> None: ...
    @property
    def dims(self) -> List[str]: ...
    @property
    def masks(self) -> List[Tuple[str, str]]: ...
    def fields(self) -> List[Dict[str, Any]]: ...
    def networks(self) -> List[Dict[str, Any]]: ...
    def entries(self) -> List[Dict[str, Any]]: ...
    def samplers(self) -> List[Dict[str, Any]]: ...
    def sampler_grid(self, sampler: str, params: Optional[Mapping[str, float]] = None) -> List[float]: ...
    def run(
        self,
        entry: str,
        inputs: Optional[Mapping[str, Any]] = None,
        *,
        seed: int = 0,
        backend: str = "interp",
        batch: Optional[int] = None,
        draws: Optional[Mapping[str, _Array]] = None,
        masks: Optional[Mapping[str, _Array]] = None,
        sizes: Optional[Mapping[str, int]] = None,
        params: Optional[Mapping[str, Any]] = None,
    ) -> Dict[str, _Array]: ...
    def step(
        self,
        sampler: str,
        state: Mapping[str, _Array],
        net: _Net,
        t: float,
        *,
        s: Optional[float] = None,
        k: int = 0,
        n: Optional[int] = None,
        r: Optional[float] = None,
        prev: Optional[Mapping[str, _Array]] = None,
        finalize: bool = False,
        params: Optional[Mapping[str, Any]] = None,
        seed: int = 0,
        backend: str = "interp",
        draws: Optional[Mapping[str, _Array]] = None,
        masks: Optional[Mapping[str, _Array]] = None,
        sizes: Optional[Mapping[str, int]] = None,
    ) -> Dict[str, _Array]: ...
    def sample(
        self,
        sampler: str,
        denoiser: Callable[[str, List[_Array], List[str]], List[_Array]],
        count: int,
        *,
        sizes: Optional[Mapping[str, int]] = None,
        masks: Optional[Mapping[str, _Array]] = None,
        state: Optional[Mapping[str, _Array]] = None,
        params: Optional[Mapping[str, Any]] = None,
        seed: int = 0,
        backend: str = "cpu",
    ) -> Dict[str, _Array]: ...
