# Sourced by the launch/emulate scripts: shared names and small helpers (bash).
#
# A bed named P is: namespace ${P}sw (the switch: bridge br0, ports p0..p{N-1}) and namespaces
# ${P}h0..${P}h{N-1} (the hosts: lo + eth0 = ${SUBNET}.(11+i)/24), plus its state files
# $EMU_STATE_DIR/P.env (owner pid + exports) and $EMU_STATE_DIR/P.hosts (the mpirun hostfile).

EMU_STATE_DIR=${EMU_STATE_DIR:-${TMPDIR:-/tmp}/gnnsys-emulate}
EMU_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
EMU_ROOT=$(cd "$EMU_DIR/../.." && pwd)
EMU_UNAVAILABLE=77   # exit code: network namespaces cannot be made here (tests skip on it)

# emu_fail CODE MESSAGE... -- print "<script>: MESSAGE" on one line to stderr and exit CODE.
emu_fail() {
  local code=$1
  shift
  echo "$(basename "$0"): $*" >&2
  exit "$code"
}

# emu_check_prefix P -- exit 2 unless P is a valid bed prefix (namespace names stay <= 15 chars).
emu_check_prefix() {
  [[ $1 =~ ^[A-Za-z][A-Za-z0-9]{0,11}$ ]] || emu_fail 2 "bad prefix '$1' (a letter, then up to 11 letters or digits)"
}

# emu_ns_of HOST -- print the namespace of HOST, given as h<i>, ${EMU_PREFIX}h<i> or its IP.
emu_ns_of() {
  local host=$1 sub=${EMU_SUBNET:-10.77.0} i
  [[ -n ${EMU_PREFIX:-} ]] || emu_fail 255 "EMU_PREFIX is not set (eval the output of launch/emulate/up)"
  case $host in
    "$sub".*)  # digits only: bash arithmetic would run a $(...) hidden in the string
      [[ ${host##*.} =~ ^[0-9]{1,3}$ ]] || emu_fail 255 "unknown host '$host'"
      i=$(( 10#${host##*.} - 11 )) ;;
    "$EMU_PREFIX"h*) i=${host#"$EMU_PREFIX"h} ;;
    h*) i=${host#h} ;;
    *) emu_fail 255 "unknown host '$host'" ;;
  esac
  [[ $i =~ ^[0-9]+$ && -e /run/netns/${EMU_PREFIX}h$i ]] || emu_fail 255 "no emulated host '$host' in bed $EMU_PREFIX"
  echo "${EMU_PREFIX}h$i"
}

# emu_probe -- print why a bed cannot be built here and return 1; return 0 when it can.
emu_probe() {
  local tool probe="gsprobe$$"
  [[ $(id -u) == 0 ]] || { echo "network namespaces need root (running as uid $(id -u))"; return 1; }
  for tool in ip tc unshare; do
    command -v "$tool" >/dev/null || { echo "'$tool' is not installed"; return 1; }
  done
  if ! ip netns add "$probe" 2>/dev/null; then
    echo "'ip netns add' is not allowed here (no CAP_SYS_ADMIN / NET_ADMIN?)"
    return 1
  fi
  local ok=1 why=""
  if ! ip netns exec "$probe" unshare --uts true 2>/dev/null; then
    why="cannot enter a network namespace or make a UTS namespace here"
  elif ! ip -n "$probe" link add a0 type veth peer name a1 2>/dev/null; then
    why="cannot create veth pairs (no veth support)"
  elif ! ip netns exec "$probe" tc qdisc add dev a0 root tbf rate 1gbit burst 512kb latency 50ms 2>/dev/null; then
    why="cannot add a tbf qdisc (no sch_tbf support)"
  else
    ok=0
  fi
  ip netns del "$probe" 2>/dev/null
  [[ $ok == 0 ]] || { echo "$why"; return 1; }
}
