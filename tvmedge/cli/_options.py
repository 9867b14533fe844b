"""Options shared by several verbs."""

import click

input_shape_option = click.option(
    "--input-shape", "input_shapes", multiple=True, metavar="NAME=D0,D1,...",
    help="Fix an input's shape (repeatable), e.g. --input-shape x=1,3,224,224.")
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
