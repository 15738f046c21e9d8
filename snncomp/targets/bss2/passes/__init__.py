"""The BrainScaleS-2 lowering passes; importing this package registers them all."""

from __future__ import annotations

from .map_parameters import MapParameters
from .partition import Partition
from .place import Place
from .quantize import Quantize
from .route import Route
from .split_sign import SplitSign
from .verify_config import VerifyConfig

__all__ = ["MapParameters", "Partition", "Place", "Quantize", "Route", "SplitSign", "VerifyConfig"]
