#!/usr/bin/env python3
"""A faultline controller in Python, on stubs generated from faultd's .proto.

It opens a lease and keeps it alive, injects a process pause as a dry run and then for
real (bound to the lease), watches the agent's events, reverts the fault and closes the
lease. Over the Unix socket (as root or an operator group member) or over mutual TLS
(a client certificate with the operator role in faultd.toml's [roles]).

Generate the stubs first (see README.md):

    python -m grpc_tools.protoc -I /usr/share/faultline/proto \\
        --python_out=gen --grpc_python_out=gen faultline/v1/agent.proto

Examples:

    sudo PYTHONPATH=gen python3 faultline_example.py --pid 4242
    PYTHONPATH=gen python3 faultline_example.py --pid 4242 --target node1:7443 \\
        --ca ca.pem --cert me.pem --key me.key
"""

import argparse
import queue
import sys
import threading
import time

import grpc

try:
    from faultline.v1 import agent_pb2 as pb
    from faultline.v1 import agent_pb2_grpc as rpc
except ImportError as e:
    sys.exit(
        f"{e}: generate the stubs first and put them on PYTHONPATH (README.md):\n"
        "  python -m grpc_tools.protoc -I /usr/share/faultline/proto "
        "--python_out=gen --grpc_python_out=gen faultline/v1/agent.proto"
    )


def channel(args):
    if args.target:
        creds = grpc.ssl_channel_credentials(
            root_certificates=open(args.ca, "rb").read(),
            private_key=open(args.key, "rb").read(),
            certificate_chain=open(args.cert, "rb").read(),
        )
        return grpc.secure_channel(args.target, creds)
    # No channel option is needed with faultd's own socket: it serves the socket path
    # grpc-core sends as :authority (docs/api.md, "Transports").
    return grpc.insecure_channel("unix://" + args.socket)


class LeaseKeeper(threading.Thread):
    """Renews a lease every third of its TTL until stopped (a dead-man switch: if this
    process dies, the agent reverts the faults bound to the lease when it lapses)."""

    def __init__(self, stub, lease):
        super().__init__(daemon=True)
        self.stub, self.lease, self.stop = stub, lease, threading.Event()

    def run(self):
        while not self.stop.wait(self.lease.ttl_ms / 3000):
            self.stub.RenewLease(pb.RenewLeaseRequest(id=self.lease.id), timeout=5)


def follow(stream, events):
    """Puts every event of a Watch stream into `events` (runs on its own thread)."""
    try:
        for ev in stream:
            events.put(ev)
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.CANCELLED:
            events.put(e)


def wait_for(events, fault_id, kind, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            ev = events.get(timeout=deadline - time.monotonic())
        except queue.Empty:
            break
        if isinstance(ev, Exception):
            raise ev
        if ev.fault_id == fault_id and ev.type == kind:
            return ev
    sys.exit(f"no {pb.EventType.Name(kind)} event for {fault_id} within {seconds}s")


def pause_and_revert(stub, args, lease):
    # The agent subscribes before it sends the reply's headers: once they are here, no
    # event of ours can be missed.
    stream = stub.Watch(pb.WatchRequest())
    stream.initial_metadata()
    events = queue.Queue()
    threading.Thread(target=follow, args=(stream, events), daemon=True).start()
    try:
        spec = pb.FaultSpec(pause=pb.PauseSpec(selector=pb.ProcessSelector(pid=args.pid)))
        req = pb.InjectRequest(spec=spec, duration_ms=60_000, lease_id=lease.id,
                               labels={"example": "python"})
        req.dry_run = True
        dry = stub.Inject(req, timeout=10)
        print(f"dry run: {dry.plan}; targets {[t.pid for t in dry.targets]}")

        req.dry_run = False
        fault = stub.Inject(req, timeout=10).fault
        print(f"injected {fault.id}: {fault.description}")
        wait_for(events, fault.id, pb.EVENT_TYPE_INJECTED)
        print("event: injected")

        time.sleep(args.hold)
        rev = stub.Revert(pb.RevertRequest(id=fault.id, reason="example done"), timeout=10)
        print(f"reverted {fault.id}: {pb.FaultState.Name(rev.fault.state)}")
        wait_for(events, fault.id, pb.EVENT_TYPE_REVERTED)
        print("event: reverted")
    finally:
        stream.cancel()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pid", type=int, required=True, help="the process to pause")
    p.add_argument("--socket", default="/run/faultline/faultd.sock")
    p.add_argument("--target", help="HOST:PORT of faultd's mutual-TLS port")
    p.add_argument("--ca", help="the CA that signed faultd's certificate")
    p.add_argument("--cert", help="this client's certificate (PEM)")
    p.add_argument("--key", help="this client's key (PEM)")
    p.add_argument("--hold", type=float, default=1.0, help="seconds to keep it paused")
    args = p.parse_args()

    with channel(args) as ch:
        stub = rpc.AgentStub(ch)
        st = stub.Status(pb.StatusRequest(), timeout=10)
        print(f"agent {st.agent_version} on {st.hostname} (kernel {st.kernel_release})")

        lease = stub.OpenLease(pb.OpenLeaseRequest(ttl_ms=15000, holder="faultline_example.py"))
        keeper = LeaseKeeper(stub, lease)
        keeper.start()
        print(f"lease {lease.id} (ttl {lease.ttl_ms} ms)")
        try:
            pause_and_revert(stub, args, lease)
        finally:
            # Closing with revert_faults ends whatever is still bound to the lease (after
            # an error half-way); the normal path has reverted it already.
            keeper.stop.set()
            stub.CloseLease(pb.CloseLeaseRequest(id=lease.id, revert_faults=True), timeout=10)
            print(f"lease {lease.id} closed")
    print("done")


if __name__ == "__main__":
    try:
        main()
    except grpc.RpcError as e:
        sys.exit(f"faultd said {e.code().name}: {e.details()}")
