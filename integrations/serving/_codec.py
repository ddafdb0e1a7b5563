"""Request and reply codecs: KServe v1 instances, Open Inference Protocol (v2) tensors.

Everything a client sends is checked here before a model sees it, and every refusal is an
:class:`InvalidInput` (400) or :class:`PayloadTooLarge` (413) naming the field:

* JSON that nests deeper than :data:`MAX_DEPTH` (a model input is a batch of instances of at
  most a few axes; 100,000 ``[`` would otherwise exhaust Python's recursion);
* anything but numbers, ragged instances, the wrong instance shape;
* values outside the range of their datatype (``INT8`` 1000, ``UINT8`` -5, ``FP16`` 1e10),
  or outside the range of the model's own input type (``1e308`` for a float32 torch model):
  cast silently they would become wrapped integers or infinities.

The binary tensor extension of the v2 protocol (Triton's, which KServe's ``InferenceRESTClient``
uses with ``binary_data=True``): the body is a JSON header of ``Inference-Header-Content-Length``
bytes followed by the raw tensors, each input naming its byte count in
``parameters.binary_data_size``; the tensor bytes are row-major and little-endian. A request
asks for binary outputs with ``parameters.binary_data_output`` or an ``outputs`` entry's
``parameters.binary_data``; the reply is then laid out the same way.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from integrations.serving._errors import InvalidInput, PayloadTooLarge
from integrations.serving._model import Predictor

__all__ = [
    "BINARY_HEADER",
    "MAX_DEPTH",
    "NUMPY_TO_V2",
    "V2_TO_NUMPY",
    "decode_binary_request",
    "decode_v1",
    "decode_v2",
    "encode_binary_reply",
    "encode_v2_outputs",
    "parse_json",
    "to_jsonable",
    "v2_datatype",
    "wants_binary_outputs",
]

MAX_DEPTH = 32
BINARY_HEADER = "inference-header-content-length"

# Open Inference Protocol tensor datatypes this server accepts as model input.
V2_TO_NUMPY: dict[str, type[np.generic]] = {
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
# Defined by the protocol, refused here: models take numbers (BOOL/BYTES are not features).
_V2_KNOWN = {*V2_TO_NUMPY, "BOOL", "BYTES"}
NUMPY_TO_V2: dict[str, str] = {np.dtype(t).str[1:]: k for k, t in V2_TO_NUMPY.items()}


def v2_datatype(arr: np.ndarray) -> str:
    """The Open Inference Protocol datatype of an array (``BYTES`` for strings/objects)."""
    if arr.dtype == np.bool_:
        return "BOOL"
    if arr.dtype.kind in "iuf":
        return NUMPY_TO_V2.get(arr.dtype.str[1:], "FP64")
    return "BYTES"


# -- JSON ------------------------------------------------------------------------------------
def _check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth > limit:
                raise InvalidInput(
                    f"request body nests more than {limit} levels deep; a model input is a "
                    "batch of instances with a few axes"
                )
            children = item.values() if isinstance(item, dict) else item
            stack.extend((c, depth + 1) for c in children if isinstance(c, (list, dict)))


def parse_json(body: bytes | bytearray, what: str = "request body") -> Any:
    """``body`` as JSON, refusing malformed or too deeply nested documents.

    Raises:
        InvalidInput: Not JSON, not UTF-8, or nested deeper than :data:`MAX_DEPTH`.
    """
    try:
        value = json.loads(body)
    except RecursionError:
        raise InvalidInput(
            f"{what} nests more than {MAX_DEPTH} levels deep; a model input is a batch of "
            "instances with a few axes"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{what} is not valid JSON: {exc}") from None
    _check_depth(value)
    return value


# -- numbers and ranges ------------------------------------------------------------------------
def _numbers(value: Any, where: str, integers: bool = False) -> None:
    """Refuse anything but (nested lists of) numbers; names the first offending element."""
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, list):
            stack.extend((v, f"{path}[{i}]") for i, v in reversed(list(enumerate(item))))
        elif isinstance(item, bool) or not isinstance(item, (int, float)):
            raise InvalidInput(f"{path} must be a number; got {json.dumps(item)[:60]}")
        elif integers and not isinstance(item, int):
            raise InvalidInput(f"{path} must be an integer for this datatype; got {item!r}")
        elif isinstance(item, float) and not math.isfinite(item):
            raise InvalidInput(f"{path} must be a finite number; got {item!r}")


def _range_text(dtype: np.dtype[Any]) -> str:
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return f"{info.min}..{info.max}"
    return f"±{float(np.finfo(dtype).max):g}"


def _index(shape: tuple[int, ...], flat: int) -> str:
    return "".join(f"[{i}]" for i in np.unravel_index(flat, shape)) if shape else ""


def _cast(values: Any, where: str, datatype: str) -> np.ndarray:
    """``values`` (numbers, checked) as an array of ``datatype``, refusing out-of-range ones.

    Raises:
        InvalidInput: A ragged list, or a value its datatype cannot hold (named with its index).
    """
    dtype = np.dtype(V2_TO_NUMPY[datatype])
    try:
        wide = np.asarray(values, dtype=object if dtype.kind in "iu" else np.float64)
    except (ValueError, TypeError):
        raise InvalidInput(f"{where} is ragged: every instance must have the same shape") from None
    if wide.dtype == object and wide.size and not all(isinstance(v, int) for v in wide.flat):
        raise InvalidInput(f"{where} is ragged: every instance must have the same shape")
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        bad = next((i for i, v in enumerate(wide.flat) if not info.min <= v <= info.max), None)
    else:
        with np.errstate(over="ignore"):
            finite = np.isfinite(wide.astype(dtype))
        bad = None if finite.all() else int(np.argmin(finite.reshape(-1)))
    if bad is not None:
        value = wide.reshape(-1)[bad]
        value = value.item() if isinstance(value, np.generic) else value
        raise InvalidInput(
            f"{where}{_index(wide.shape, bad)} is {value!r}, outside the range of {datatype} "
            f"({_range_text(dtype)})"
        )
    return wide.astype(dtype)


def _fits_model(x: np.ndarray, where: str, predictor: Predictor) -> None:
    """Refuse values the model's own input type cannot hold (1e308 for a float32 model)."""
    datatype = predictor.input_datatype
    dtype = np.dtype(V2_TO_NUMPY.get(datatype, np.float64))
    if x.dtype.kind != "f" or dtype.itemsize >= x.dtype.itemsize:
        return
    with np.errstate(over="ignore"):
        finite = np.isfinite(x.astype(dtype))
    if not finite.all():
        bad = int(np.argmin(finite.reshape(-1)))
        raise InvalidInput(
            f"{where}{_index(x.shape, bad)} is {float(x.reshape(-1)[bad])!r}, outside the range "
            f"of {datatype} ({_range_text(dtype)}), the input type of model "
            f"{predictor.info.name!r}"
        )


# -- v1 ----------------------------------------------------------------------------------------
def decode_v1(body: Any, predictor: Predictor, max_batch: int) -> np.ndarray:
    """The batch of a KServe v1 request ``{"instances": [...]}`` (or ``{"inputs": [...]}``).

    Instances are lists of numbers, or objects keyed by feature name when the model knows its
    feature names.

    Raises:
        InvalidInput: Missing/empty instances, non-numbers, out-of-range values, wrong shape;
            names the field.
        PayloadTooLarge: More instances than ``max_batch``.
    """
    if not isinstance(body, dict):
        raise InvalidInput(
            f'request body must be a JSON object {{"instances": [...]}}; got {type(body).__name__}'
        )
    key = "instances" if "instances" in body else "inputs" if "inputs" in body else None
    if key is None:
        raise InvalidInput('request body must have "instances": a list of instances')
    instances = body[key]
    if not isinstance(instances, list) or not instances:
        raise InvalidInput(f'"{key}" must be a non-empty list of instances')
    if len(instances) > max_batch:
        raise PayloadTooLarge(
            f'"{key}" holds {len(instances)} instances; this server takes at most {max_batch} '
            "per request (--max-batch)"
        )
    if all(isinstance(i, dict) for i in instances):
        instances = _by_name(instances, predictor, key)
    _numbers(instances, key)
    x = _cast(instances, key, "FP64")
    predictor.check(x, key)
    _fits_model(x, key, predictor)
    return x


def _by_name(instances: list[Any], predictor: Predictor, key: str) -> list[list[Any]]:
    names = predictor.info.feature_names
    if not names:
        raise InvalidInput(
            f"{key} are objects, but model {predictor.info.name!r} was not fitted on named "
            "features; send each instance as a list of numbers"
        )
    rows = []
    for i, inst in enumerate(instances):
        missing = [n for n in names if n not in inst]
        extra = sorted(set(inst) - set(names))
        if missing or extra:
            raise InvalidInput(
                f"{key}[{i}] "
                + (f"lacks features {missing}" if missing else "")
                + ("; " if missing and extra else "")
                + (f"has unknown features {extra}" if extra else "")
                + f"; the model's features are {list(names)}"
            )
        rows.append([inst[n] for n in names])
    return rows


# -- v2 ----------------------------------------------------------------------------------------
def _shape(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value
    ):
        raise InvalidInput(f"{where} must be a list of non-negative integers; got {value!r}")
    return list(value)


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    stack: list[Any] = [iter(data)]
    while stack:  # iterative: the depth is bounded already, but no recursion is needed
        item = next(stack[-1], stack)
        if item is stack:
            stack.pop()
        elif isinstance(item, list):
            stack.append(iter(item))
        else:
            out.append(item)
    return out


def _datatype(value: Any, where: str) -> str:
    if value not in _V2_KNOWN:
        raise InvalidInput(f"{where} must be one of {sorted(_V2_KNOWN)}; got {value!r}")
    if value not in V2_TO_NUMPY:
        raise InvalidInput(
            f"{where} {value} is not supported: the served models take numbers "
            "(FP32, FP64, INT64, ...)"
        )
    return str(value)


def decode_v2(body: Any, predictor: Predictor, max_batch: int) -> tuple[np.ndarray, str]:
    """The batch of an Open Inference Protocol v2 request, and the name of its input.

    The request has one input tensor ``{"name", "shape", "datatype", "data"}`` whose data
    (flat in row-major order, or nested) holds ``prod(shape)`` numbers of its datatype.

    Raises:
        InvalidInput: A missing field, an unknown or non-numeric datatype, data that does not
            fill the shape or does not fit its datatype, the wrong instance shape; names the
            field.
        PayloadTooLarge: A batch (``shape[0]``) over ``max_batch``.
    """
    if not isinstance(body, dict):
        raise InvalidInput(
            'request body must be a JSON object {"inputs": [...]}; got ' + type(body).__name__
        )
    if "id" in body and not isinstance(body["id"], str):
        raise InvalidInput(f"id must be a string; got {body['id']!r}")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput('request body must have "inputs": a non-empty list of tensors')
    if len(inputs) != 1:
        raise InvalidInput(
            f"inputs holds {len(inputs)} tensors; model {predictor.info.name!r} takes one "
            "input tensor of shape [N, features]"
        )
    tensor = inputs[0]
    if not isinstance(tensor, dict):
        raise InvalidInput("inputs[0] must be an object {name, shape, datatype, data}")
    for fld in ("name", "shape", "datatype", "data"):
        if fld not in tensor:
            raise InvalidInput(f"inputs[0].{fld} is required")
    name = tensor["name"]
    if not isinstance(name, str):
        raise InvalidInput(f"inputs[0].name must be a string; got {name!r}")
    shape = _shape(tensor["shape"], "inputs[0].shape")
    datatype = _datatype(tensor["datatype"], "inputs[0].datatype")
    if shape and shape[0] > max_batch:
        raise PayloadTooLarge(
            f"inputs[0].shape[0] is {shape[0]} instances; this server takes at most "
            f"{max_batch} per request (--max-batch)"
        )
    flat = _flatten(tensor["data"])
    count = math.prod(shape) if shape else 1
    if len(flat) != count:
        raise InvalidInput(f"inputs[0].data holds {len(flat)} values; shape {shape} needs {count}")
    _numbers(flat, "inputs[0].data", integers=datatype[0] in "IU")
    x = _cast(flat, "inputs[0].data", datatype).reshape(shape)
    predictor.check(x, "inputs[0]")
    _fits_model(x, "inputs[0].data", predictor)
    return x, name


def encode_v2_outputs(result: np.ndarray, name: str = "output-0") -> list[dict[str, Any]]:
    """An Open Inference Protocol output tensor (row-major flat data), as KServe writes it."""
    arr = np.asarray(result)
    datatype = v2_datatype(arr)
    data = arr.reshape(-1).tolist() if datatype != "BYTES" else [str(v) for v in arr.reshape(-1)]
    return [{"name": name, "shape": list(arr.shape), "datatype": datatype, "data": data}]


def to_jsonable(result: Any) -> Any:
    """A prediction array as JSON values (numpy scalars and string labels included)."""
    arr = np.asarray(result)
    if arr.dtype.kind in "biuf":
        return arr.tolist()
    return np.vectorize(str, otypes=[object])(arr).tolist() if arr.size else []


# -- the binary tensor extension ---------------------------------------------------------------
def decode_binary_request(body: bytes | bytearray, header_length: str) -> Any:
    """A v2 request in the binary tensor extension, as the equivalent JSON request.

    Each input whose ``parameters.binary_data_size`` is set takes that many bytes, in order,
    from the part after the JSON header; they become its ``data`` (so transformers and
    :func:`decode_v2` see an ordinary request).

    Args:
        body: The whole request body.
        header_length: The ``Inference-Header-Content-Length`` header: the JSON part's size.

    Raises:
        InvalidInput: A bad header length, a malformed JSON part, a byte count that does not
            match its shape and datatype or the bytes sent, a non-numeric datatype.
    """
    text = header_length.strip()
    if not text.isdigit() or int(text) > len(body):
        raise InvalidInput(
            f"{BINARY_HEADER} must be the byte length of the JSON part (0-{len(body)}); "
            f"got {header_length!r}"
        )
    cut = int(text)
    doc = parse_json(body[:cut], "the JSON part of the request")
    raw = memoryview(bytes(body[cut:]))
    inputs = doc.get("inputs") if isinstance(doc, dict) else None
    offset = 0
    for i, tensor in enumerate(inputs if isinstance(inputs, list) else []):
        params = tensor.get("parameters") if isinstance(tensor, dict) else None
        if not isinstance(params, dict) or "binary_data_size" not in params:
            continue
        where = f"inputs[{i}]"
        size = params["binary_data_size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidInput(
                f"{where}.parameters.binary_data_size must be a byte count; got {size!r}"
            )
        if "data" in tensor:
            raise InvalidInput(f"{where} has both data and binary_data_size; send one")
        datatype = _datatype(tensor.get("datatype"), f"{where}.datatype")
        shape = _shape(tensor.get("shape"), f"{where}.shape")
        dtype = np.dtype(V2_TO_NUMPY[datatype]).newbyteorder("<")
        need = math.prod(shape) * dtype.itemsize
        if size != need:
            raise InvalidInput(
                f"{where}.parameters.binary_data_size is {size} bytes; shape {shape} of "
                f"{datatype} needs {need}"
            )
        if offset + size > len(raw):
            raise InvalidInput(
                f"{where} needs bytes {offset}-{offset + size} of the binary part, which holds "
                f"{len(raw)}"
            )
        arr = np.frombuffer(raw[offset : offset + size], dtype=dtype)
        if dtype.kind == "f" and not np.isfinite(arr).all():
            bad = int(np.argmin(np.isfinite(arr)))
            raise InvalidInput(f"{where}.data[{bad}] must be a finite number; got {arr[bad]!r}")
        offset += size
        params = {k: v for k, v in params.items() if k != "binary_data_size"}
        tensor.pop("parameters")
        if params:
            tensor["parameters"] = params
        tensor["data"] = arr.tolist()
    if offset != len(raw):
        raise InvalidInput(
            f"the binary part holds {len(raw)} bytes; the inputs' binary_data_size add up to "
            f"{offset}"
        )
    return doc


def wants_binary_outputs(request: Any) -> bool:
    """Whether a v2 request asks for its outputs in the binary tensor extension."""
    if not isinstance(request, dict):
        return False
    params = request.get("parameters")
    if isinstance(params, dict) and params.get("binary_data_output") is True:
        return True
    outputs = request.get("outputs")
    return isinstance(outputs, list) and any(
        isinstance(o, dict)
        and isinstance(o.get("parameters"), dict)
        and o["parameters"].get("binary_data") is True
        for o in outputs
    )


def _tensor_bytes(out: Mapping[str, Any]) -> bytes:
    data, datatype = out.get("data", []), out.get("datatype")
    if datatype == "BYTES":  # each element: 4-byte little-endian length, then the bytes
        parts = [str(v).encode() for v in data]
        return b"".join(struct.pack("<I", len(p)) + p for p in parts)
    if datatype == "BOOL":
        return np.asarray(data, dtype=np.bool_).tobytes()
    dtype = np.dtype(V2_TO_NUMPY[str(datatype)]).newbyteorder("<")
    return np.asarray(data, dtype=dtype).tobytes()


def encode_binary_reply(content: dict[str, Any]) -> tuple[bytes, int]:
    """A v2 reply with its outputs' data as raw tensors after the JSON header.

    Returns:
        The body and the JSON part's length (the ``Inference-Header-Content-Length`` header).
    """
    outputs, blobs = [], []
    for out in content.get("outputs") or []:
        blob = _tensor_bytes(out)
        head = {k: v for k, v in out.items() if k != "data"}
        head["parameters"] = {**(out.get("parameters") or {}), "binary_data_size": len(blob)}
        outputs.append(head)
        blobs.append(blob)
    header = json.dumps({**content, "outputs": outputs}).encode()
    return header + b"".join(blobs), len(header)
