"""GGUF tensor types: which type each tensor gets, and K-quants through llama.cpp's own quantizer.

F32, F16, BF16, Q8_0 and Q4_0 are quantized in numpy by `gguf.quants`, with llama.cpp's converter's rules (1-D
tensors, norms and biases stay F32; a row that does not fill whole blocks falls back to F16). K-quants (Q4_K_M,
Q5_K_M, Q6_K) need llama.cpp's quantizer: `llama_cpp.llama_model_quantize` from llama-cpp-python, run on an F16
or F32 GGUF that we write first.
"""

from __future__ import annotations

import math
from pathlib import Path

import gguf
import numpy as np

from ftstudio.errors import BadInput, Unavailable
from ftstudio.export.settings import K_QUANTS, QUANTS

Q = gguf.GGMLQuantizationType
FT = gguf.LlamaFileType
PLAIN = {"f32": (Q.F32, FT.ALL_F32), "f16": (Q.F16, FT.MOSTLY_F16), "bf16": (Q.BF16, FT.MOSTLY_BF16),
         "q8_0": (Q.Q8_0, FT.MOSTLY_Q8_0), "q4_0": (Q.Q4_0, FT.MOSTLY_Q4_0)}  # fmt: skip
K_FILE_TYPES = {"q4_k_m": FT.MOSTLY_Q4_K_M, "q5_k_m": FT.MOSTLY_Q5_K_M, "q6_k": FT.MOSTLY_Q6_K}
INSTALL_LLAMA_CPP = 'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install llama-cpp-python'
# Bits per weight, for disk estimates before writing.
BITS = {"f32": 32, "f16": 16, "bf16": 16, "q8_0": 8.5, "q4_0": 4.5, "q4_k_m": 4.9, "q5_k_m": 5.7, "q6_k": 6.6}


def check_quant(quant: str) -> str:
    """`quant` lower-cased if it is a type ftstudio writes; BadInput listing the valid ones otherwise."""
    q = quant.lower()
    if q not in QUANTS:
        raise BadInput(f"unknown quant type {quant!r}", hint=f"use one of: {', '.join(QUANTS)}")
    return q


def require_llama_cpp(quant: str) -> None:
    """Unavailable (exit 3, with the install command) when a K-quant is asked for without llama-cpp-python."""
    if quant in K_QUANTS and not llama_cpp_available():
        raise Unavailable(
            f"quant {quant} needs llama.cpp's quantizer, and llama-cpp-python is not installed",
            hint=f"install it with: {INSTALL_LLAMA_CPP}; or pick f16, bf16, q8_0 or q4_0, which need nothing",
        )


def llama_cpp_available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except Exception:  # a broken native build raises OSError, not ImportError
        return False
    return True


def tensor_type(gguf_name: str, shape: tuple[int, ...], quant: gguf.GGMLQuantizationType) -> gguf.GGMLQuantizationType:
    """The type llama.cpp's converter would give this tensor in a file of type `quant`."""
    if len(shape) <= 1 or gguf_name.endswith("_norm.weight") or not gguf_name.endswith(".weight"):
        return Q.F32
    block = gguf.GGML_QUANT_SIZES[quant][0]
    if shape[-1] % block:
        return Q.F16
    return quant


def nbytes(shape: tuple[int, ...], qtype: gguf.GGMLQuantizationType) -> int:
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    return math.prod(shape) // block * size


def encode(data: np.ndarray, qtype: gguf.GGMLQuantizationType) -> np.ndarray:
    return gguf.quants.quantize(data, qtype)


def quantize_k(source: Path, dest: Path, quant: str, threads: int = 0) -> None:
    """Quantize the F16/F32 GGUF `source` into `dest` with llama.cpp's K-quant mixture `quant`."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(K_FILE_TYPES[quant])
    params.nthread = threads
    status = llama_cpp.llama_model_quantize(str(source).encode(), str(dest).encode(), params)
    if status != 0:
        raise BadInput(f"llama.cpp could not quantize {source.name} to {quant} (status {status})")
