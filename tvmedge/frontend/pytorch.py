"""PyTorch ``torch.export`` programs (``.pt2``) -> Relax, through TVM's ``from_exported_program``.

The other way in for PyTorch users (beside exporting to ONNX): ``torch.export.save(ep, "model.pt2")``,
then ``tvmedge compile model.pt2 --target ...`` gives the same artifact and manifest as the ONNX route.
torch is an optional extra (``pip install 'tvmedge[torch]'``), imported only here and only for ``.pt2``
files; an exported program carries static shapes, so ``--input-shape`` and ``--freeze-input`` do not apply.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import ConfigError, ModelError, ToolchainError, first_line
from ..runtime.manifest import TensorSpec

__all__ = ["EXPORTED_PROGRAM_SUFFIX", "import_exported_program", "is_exported_program"]

EXPORTED_PROGRAM_SUFFIX = ".pt2"


def is_exported_program(path) -> bool:
    return Path(path).suffix == EXPORTED_PROGRAM_SUFFIX


def import_exported_program(path, input_shapes=None, frozen_inputs=None):
    """Load a ``torch.export`` program saved with ``torch.export.save`` and import it into Relax ->
    :class:`tvmedge.frontend.onnx.ImportedModel` (inputs named as the program's user inputs, outputs
    ``output_0``, ``output_1``, ...).

    Raises
    ------
    ToolchainError
        torch is not installed.
    ModelError
        Unreadable file, or TVM's importer failing on the program.
    ConfigError
        ``input_shapes`` or ``frozen_inputs`` given (the program's shapes are fixed at export).
    """
    from .onnx import ImportedModel, _relax_output_specs

    if input_shapes or frozen_inputs:
        raise ConfigError("--input-shape and --freeze-input apply to ONNX models; a .pt2 program's shapes are "
                          "fixed when it is exported (torch.export.export(model, example_inputs))")
    try:
        import torch
    except ImportError as err:
        raise ToolchainError("compiling a .pt2 program needs torch: pip install 'tvmedge[torch]' "
                             "(CPU wheel: pip install torch --index-url https://download.pytorch.org/whl/cpu)") from err
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    data = path.read_bytes()
    try:
        program = torch.export.load(str(path))
    except Exception as err:  # zipfile, pickle and torch errors for anything that is not a saved program
        raise ModelError(f"{path} is not a torch.export program (torch.export.load: {first_line(err)})") from err
    from tvm.relax.frontend.torch import from_exported_program

    try:
        mod = from_exported_program(program, keep_params_as_input=False, unwrap_unit_return_tuple=True)
    except Exception as err:  # the translator raises assorted errors for unsupported aten ops
        raise ModelError(f"{path}: TVM's torch.export importer failed: {first_line(err)}") from err
    inputs = _input_specs(mod)
    names = _output_names(program)
    outputs = _relax_output_specs(mod, names, path)
    return ImportedModel(mod, inputs, outputs, str(path), hashlib.sha256(data).hexdigest(), {}, None)


def _input_specs(mod) -> list:
    specs = []
    for param in mod["main"].params:
        shape = tuple(int(d) for d in param.ty.shape.values)
        specs.append(TensorSpec(param.name, shape, str(param.ty.dtype)))
    return specs


def _output_names(program) -> list:
    """``output_0``, ``output_1``, ...: torch.export names outputs after the graph node that made them
    (``add_1``), which says nothing to a user of the artifact."""
    return [f"output_{i}" for i in range(len(program.graph_signature.user_outputs))]
