"""Board side of TVM's RPC: ``python -m tvmedge.runtime.rpc_server --tracker HOST:PORT --key rk3588``.

This is TVM's own RPC server (``tvm.rpc.server``), started in this process. TVM's launcher
(``python -m tvm.exec.rpc_server``) starts it in a child by exec-ing ``sys.executable``, which an emulated
board under qemu-user cannot do without binfmt_misc; the server state TVM's launcher creates in that child
is created here directly instead. Sessions still fork per connection as TVM does. Runtime side only.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..errors import ConfigError
from .remote import parse_address


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tvmedge.runtime.rpc_server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback)")
    parser.add_argument("--port", type=int, default=9090)
    parser.add_argument("--port-end", type=int, help="try ports up to this one (default: port + 100)")
    parser.add_argument("--tracker", metavar="HOST:PORT", help="register with TVM's RPC tracker")
    parser.add_argument("--key", default="", help="the key boards of this kind register under, e.g. rk3588")
    args = parser.parse_args(argv)
    tracker = None
    if args.tracker:
        try:
            tracker = parse_address(args.tracker, "--tracker")
        except ConfigError as err:
            parser.error(str(err))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s rpc %(message)s", stream=sys.stderr)
    from tvm.rpc.server import PopenRPCServerState

    port_end = args.port_end or args.port + 100
    state = PopenRPCServerState(args.host, args.port, port_end, tracker_addr=tracker, key=args.key)
    print(f"listening on {args.host}:{state.port}" + (f", registered as '{args.key}' at {args.tracker}" if tracker else ""),
          flush=True)
    state.thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
