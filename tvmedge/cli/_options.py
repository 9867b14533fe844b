"""Options shared by several verbs."""

import click

input_shape_option = click.option(
    "--input-shape", "input_shapes", multiple=True, metavar="NAME=D0,D1,...",
    help="Fix an input's shape (repeatable), e.g. --input-shape x=1,3,224,224.")
freeze_input_option = click.option(
    "--freeze-input", "frozen_inputs", multiple=True, metavar="NAME=VALUE",
    help="Make an input a constant (repeatable), e.g. --freeze-input sample_rate=16000 or axes=0,2: it leaves the "
         "artifact's inputs and what it selects is folded away; recorded in the manifest.")
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
