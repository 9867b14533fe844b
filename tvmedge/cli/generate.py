"""``tvmedge generate``: text from an LM artifact, streamed to the terminal token by token."""

import click

from ._options import json_option
from ._output import emit


@click.command("generate")
@click.argument("artifact", type=click.Path(file_okay=False))
@click.option("--prompt", required=True, help="Text to continue.")
@click.option("--max-tokens", type=int, default=64, show_default=True)
@click.option("--temperature", type=float, default=0.0, show_default=True, help="0 = greedy.")
@click.option("--top-k", type=int, default=0, show_default=True, help="Sample from the k most likely (0 = all).")
@click.option("--top-p", type=float, default=1.0, show_default=True, help="Nucleus: smallest set reaching p.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--stop", multiple=True, help="A token that ends generation (repeatable), e.g. --stop '.'.")
@click.option("--board", help="Run on an emulated board, e.g. emu:rk3588 (libraries and KV cache live there).")
@json_option
def generate_cmd(artifact, prompt, max_tokens, temperature, top_k, top_p, seed, stop, board, as_json):
    """Generate text with an LM artifact (`tvmedge compile MODEL_DIR/` on an LM package)."""
    from .. import api

    def stream(token):  # the prompt first, once generation has started (a refused prompt prints nothing)
        click.echo((prompt if token.index == 0 else "") + token.text, nl=False)

    result = api.generate(artifact, prompt, max_tokens=max_tokens, temperature=temperature, top_k=top_k,
                          top_p=top_p, seed=seed, stop=stop, board=board, on_token=None if as_json else stream)
    emit(result.to_json(), as_json, _render)


def _render(d):
    rate = d["decode_tokens_per_s"]
    click.echo("")
    click.echo(f"[{len(d['tokens'])} tokens on {d['where']}, stop: {d['stop_reason']}; time to first token "
               f"{d['ttft_ms']:.1f} ms, decode {'-' if rate is None else f'{rate:.1f}'} tokens/s"
               + (" (emulated: timings mean nothing)" if d["where"].startswith("emu:") else "") + "]", err=True)
