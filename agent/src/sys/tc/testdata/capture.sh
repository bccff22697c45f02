#!/bin/bash
# Regenerates the golden netlink messages in this directory from iproute2's own `tc`.
#
# Each fixture NAME.hex holds the whole netlink request that `tc` sent (header included)
# as hex, preceded by comment lines naming the exact command line. The unit tests in
# ../codec.rs build the same request through faultline's encoder and compare byte for
# byte, ignoring only the fields that vary per run: nlmsg_seq, nlmsg_pid and the
# interface index in struct tcmsg.
#
# It works even on a kernel without sch_netem or sch_prio: strace records the request
# before the kernel rejects it. Everything happens inside a scratch network namespace on a
# scratch veth pair, never in the root namespace. Needs root, strace, iproute2, python3.
#
# Usage: capture.sh            (writes the fixtures next to this script)
#        ONLY="a b" capture.sh (writes only fixtures a.hex and b.hex)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ns="flcap$$"
dev=flc0
ifb=flcifb0
cleanup() { ip netns del "$ns" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link add "$dev" type veth peer name flc1
ip -n "$ns" link add "$ifb" type ifb
ip -n "$ns" link set "$dev" up
ifb_index=$(ip netns exec "$ns" cat /sys/class/net/$ifb/ifindex)
tcver=$(tc -V)

# capture NAME ARGS... : run `tc ARGS` in the namespace under strace and store the
# RTM_NEWQDISC / RTM_DELQDISC / RTM_NEWTFILTER request it sent.
capture() {
    local name=$1; shift
    # ONLY="name1 name2": capture just those (leaves the other fixtures as they are).
    if [[ -n "${ONLY:-}" && " $ONLY " != *" $name "* ]]; then return; fi
    local trace
    trace=$(mktemp)
    ip netns exec "$ns" strace -f -o "$trace" -e trace=sendmsg -e write=all -s 65536 -xx \
        tc "$@" >/dev/null 2>&1 || true
    python3 - "$trace" "$here/$name.hex" "tc $*" "$tcver" "$ifb_index" <<'PY'
import re, sys
trace, out, cmd, ver, ifb = sys.argv[1:]
msgs, cur = [], None
for line in open(trace):
    # " | 00010  00 00 ... 00  00 ... 00  ascii |": 16 hex bytes in a 49-column field
    m = re.match(r"^(?:\d+\s+)? \| ([0-9a-f]{5})  (.{49})", line)
    if m:
        if m.group(1) == "00000":
            cur = bytearray(); msgs.append(cur)
        cur.extend(bytes.fromhex("".join(m.group(2).split())))
# RTM_NEWQDISC=36, RTM_DELQDISC=37, RTM_NEWTFILTER=44
msgs = [m for m in msgs if len(m) >= 16 and int.from_bytes(m[4:6], "little") in (36, 37, 44)]
if len(msgs) != 1:
    sys.exit(f"{out}: expected one tc request, found {len(msgs)}")
msg = msgs[0]
with open(out, "w") as f:
    f.write(f"# cmd: {cmd}\n# by: {ver}\n")
    if "mirred" in cmd:
        f.write(f"# ifb-ifindex: {ifb}\n")
    for i in range(0, len(msg), 32):
        f.write(msg[i:i + 32].hex() + "\n")
PY
    rm -f "$trace"
}

R="qdisc replace dev $dev root handle fa17:"
# netem: every parameter family, alone and combined
capture netem_delay            $R netem delay 100ms
capture netem_delay_normal     $R netem delay 100ms 10ms 25% distribution normal
capture netem_delay_pareto     $R netem delay 50ms 20ms distribution pareto
capture netem_delay_paretonormal $R netem delay 80ms 5ms 10% distribution paretonormal
capture netem_delay_jitter     $R netem delay 20ms 3ms
capture netem_loss_random      $R netem loss random 20% 25%
capture netem_loss_gemodel     $R netem loss gemodel 1% 10% 70% 0.1%
capture netem_loss_state       $R netem loss state 1% 10% 20% 5% 0.5%
capture netem_loss_ecn         $R netem loss 1% ecn
capture netem_duplicate        $R netem duplicate 5% 10%
capture netem_corrupt          $R netem corrupt 0.1% 20%
capture netem_reorder          $R netem delay 10ms reorder 25% 50% gap 5
capture netem_rate             $R netem rate 10mbit
capture netem_rate64           $R netem rate 50gbit
capture netem_limit            $R netem limit 5000 delay 30ms
capture netem_combined         $R netem limit 2000 delay 100ms 10ms 25% loss 0.3% 25% duplicate 1% corrupt 0.1% reorder 5% 50% gap 3 rate 100mbit
capture netem_slot             $R netem slot 800us 1200us packets 8 bytes 6000
capture netem_child            qdisc replace dev $dev parent fa17:4 handle fa18: netem delay 50ms loss 20%
# prio root with a fourth band for the fault
capture prio4                  $R prio bands 4 priomap 1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1
# tbf (the host kernel has it)
capture tbf_latency            $R tbf rate 10mbit burst 32kbit latency 400ms
capture tbf_limit              $R tbf rate 1gbit burst 128k limit 100000
capture tbf_rate64             $R tbf rate 50gbit burst 1m latency 50ms
capture del_root               qdisc del dev $dev root
# ingress qdisc and u32 filters
capture ingress                qdisc replace dev $dev handle ffff: ingress
F="filter add dev $dev parent fa17:"
capture u32_dst4               $F protocol ip prio 1 u32 match ip dst 10.1.0.0/16 flowid fa17:4
capture u32_src6               $F protocol ipv6 prio 2 u32 match ip6 src 2001:db8::/32 flowid fa17:4
capture u32_dport              $F protocol ip prio 3 u32 match ip dport 8080 0xffff flowid fa17:4
capture u32_protocol           $F protocol ip prio 4 u32 match ip protocol 6 0xff flowid fa17:4
capture u32_v4_combined        $F protocol ip prio 5 u32 match ip dst 10.1.2.3/32 match ip src 192.168.0.0/24 match ip protocol 17 0xff match ip sport 5296 0xfff0 flowid fa17:4
capture u32_v6_combined        $F protocol ipv6 prio 6 u32 match ip6 dst 2001:db8:1::/48 match ip6 protocol 6 0xff match ip6 dport 443 0xffff flowid fa17:4
capture u32_mirred            filter add dev $dev parent ffff: protocol all prio 1 u32 match u32 0 0 action mirred egress redirect dev $ifb
# protected traffic: exemption filters ahead of the fault's (flowid fa17:2), and the
# match-all that sends everything else of a whole-interface fault to the fault band
capture exempt_sport4          $F protocol ip prio 1 u32 match ip sport 22 0xffff flowid fa17:2
capture exempt_dport6          $F protocol ipv6 prio 2 u32 match ip6 dport 22 0xffff flowid fa17:2
capture exempt_flow4           $F protocol ip prio 1 u32 match ip dst 10.1.2.3/32 match ip dport 50522 0xffff flowid fa17:2
capture exempt_src4            $F protocol ip prio 1 u32 match ip src 10.9.0.0/16 flowid fa17:2
capture exempt_arp             $F protocol arp prio 3 u32 match u32 0 0 flowid fa17:2
capture exempt_nd6             $F protocol ipv6 prio 2 u32 match ip6 protocol 58 0xff match u8 134 0xfe at 40 flowid fa17:2
capture match_all              $F protocol all prio 6 u32 match u32 0 0 flowid fa17:4
# blackhole: gact drop on the selection's filter, and on the match-all
capture drop_dst4              $F protocol ip prio 4 u32 match ip dst 10.1.0.0/24 action drop
capture drop_all               $F protocol all prio 6 u32 match u32 0 0 action drop
echo "fixtures written to $here"
