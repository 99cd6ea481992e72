#!/usr/bin/env bash
# imds-redirect.sh: send IMDS traffic (169.254.169.254:80) to imds-cache-proxy with iptables.
#
#   imds-redirect.sh install|remove|print [options]
#
# Modes:
#   --mode host   (default) every local process's connections to 169.254.169.254:80 go to
#                 127.0.0.1:PORT (nat OUTPUT), except the proxy's own user's, so the proxy
#                 still reaches the real IMDS and never itself.
#   --mode pods   Kubernetes node (the kube2iam pattern): connections from pods to
#                 169.254.169.254:80 go to ADDRESS:PORT, where the host-network proxy listens
#                 (nat PREROUTING), and a filter INPUT guard drops connections to ADDRESS:PORT
#                 that neither came from the node itself nor through that redirect.
#
# Options:
#   --proxy-port PORT        the proxy's port (default 8169)
#   --proxy-user NAME|UID    host mode: the proxy's user, excluded (default imds-cache-proxy)
#   --proxy-address IPV4     pods mode: the node address the proxy listens on (required)
#   --pod-interface IFACE    pods mode: only redirect packets from these interfaces
#                            (e.g. eni+, cali+, cni0; default: every interface but lo)
#   --dry-run                print what would be applied and change nothing
#
# Everything lives in the script's own chains, jumped to from one rule in a built-in chain:
#   host: nat IMDS_CACHE_PROXY (from OUTPUT)
#   pods: nat IMDS_CACHE_PROXY_PODS (from PREROUTING), filter IMDS_CACHE_PROXY_GUARD (from INPUT)
# `install` is idempotent (the chains are rewritten and the jump kept single, in one
# iptables-restore transaction per run) and `remove` deletes exactly those, so it is clean.
# `print` (and `--dry-run`) write the iptables-restore input to stdout and touch nothing;
# `print` works on any host: without the proxy user it writes <uid-of-USER> for the uid.
# IMDS_REDIRECT_IPTABLES=iptables-legacy picks the legacy backend (default: iptables).
#
# This script only reads and writes firewall rules. It never sends traffic anywhere.
set -euo pipefail
shopt -s inherit_errexit

readonly IMDS_ADDRESS=169.254.169.254
readonly HOST_CHAIN=IMDS_CACHE_PROXY
readonly PODS_CHAIN=IMDS_CACHE_PROXY_PODS
readonly GUARD_CHAIN=IMDS_CACHE_PROXY_GUARD
readonly TAG=imds-cache-proxy
IPTABLES="${IMDS_REDIRECT_IPTABLES:-iptables}"
RESTORE="${IPTABLES}-restore"

die() {
  echo "imds-redirect: $1" >&2
  exit "${2:-1}"
}
usage_error() {
  echo "imds-redirect: $1" >&2
  echo "usage: imds-redirect.sh install|remove|print [--mode host|pods] [--proxy-port PORT] [--proxy-user NAME|UID] [--proxy-address IPV4] [--pod-interface IFACE] [--dry-run]" >&2
  exit 2
}

action="${1:-}"
case "$action" in
  install | remove | print) shift ;;
  -h | --help | help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  *) usage_error "expected install, remove or print as the first argument, got \"$action\"" ;;
esac

mode=host
uid_placeholder=0
port=8169
user=imds-cache-proxy
address=""
pod_interface=""
dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --mode | --proxy-port | --proxy-user | --proxy-address | --pod-interface)
      [ $# -ge 2 ] || usage_error "$1 needs a value"
      case "$1" in
        --mode) mode="$2" ;;
        --proxy-port) port="$2" ;;
        --proxy-user) user="$2" ;;
        --proxy-address) address="$2" ;;
        --pod-interface) pod_interface="$2" ;;
      esac
      shift 2
      ;;
    --dry-run) dry_run=1; shift ;;
    *) usage_error "unknown option \"$1\"" ;;
  esac
done
[ "$action" = print ] && dry_run=1

case "$mode" in host | pods) ;; *) usage_error "--mode: expected host or pods, got \"$mode\"" ;; esac
if ! [[ "$port" =~ ^[0-9]{1,5}$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
  usage_error "--proxy-port: expected a port from 1 to 65535, got \"$port\""
fi

is_ipv4() {
  local IFS=. octets o
  [[ "$1" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || return 1
  read -r -a octets <<<"$1"
  for o in "${octets[@]}"; do [ "$((10#$o))" -le 255 ] || return 1; done
}

# A live `remove` finds our rules by chain name: it needs neither the user nor the address.
live_remove=0
[ "$action" = remove ] && [ "$dry_run" = 0 ] && live_remove=1

if [ "$mode" = host ]; then
  [ -z "$address" ] || usage_error "--proxy-address is for --mode pods (host mode always redirects to 127.0.0.1)"
  [ -z "$pod_interface" ] || usage_error "--pod-interface is for --mode pods"
  if [ "$live_remove" = 1 ]; then
    uid=""
  elif [[ "$user" =~ ^[0-9]+$ ]]; then
    uid="$user"
  elif [[ "$user" =~ ^[a-z_][a-z0-9_-]*\$?$ ]]; then
    if ! uid="$(id -u -- "$user" 2>/dev/null)"; then
      # `print` only shows the rules, so it works on any host: a placeholder stands for the uid.
      [ "$action" = print ] ||
        die "--proxy-user: no user \"$user\" on this host; create it first (deploy/systemd/imds-cache-proxy.sysusers) or give its UID. Without the exclusion the proxy would redirect itself" 2
      uid="<uid-of-$user>"
      uid_placeholder=1
    fi
  else
    usage_error "--proxy-user: expected a user name or UID, got \"$user\""
  fi
  [ "$uid" != 0 ] || die "--proxy-user: refusing uid 0: root's own IMDS traffic would bypass the proxy, and the proxy must not run as root" 2
else
  [ -n "$address" ] || [ "$live_remove" = 1 ] || usage_error "--mode pods needs --proxy-address (the node IP the proxy listens on)"
  [ -z "$address" ] || is_ipv4 "$address" || usage_error "--proxy-address: expected an IPv4 address, got \"$address\""
  case "$address" in 127.*) usage_error "--proxy-address: pods cannot reach the node's loopback; give the node IP" ;; esac
  if [ -n "$pod_interface" ] && ! [[ "$pod_interface" =~ ^[A-Za-z0-9_.-]{1,15}\+?$ ]]; then
    usage_error "--pod-interface: expected an interface name or prefix+ (e.g. eni+), got \"$pod_interface\""
  fi
fi

# One entry per chain: table, built-in chain, our chain, the jump's match (without -j).
jumps=()
if [ "$mode" = host ]; then
  jumps+=("nat OUTPUT $HOST_CHAIN -d $IMDS_ADDRESS/32 -p tcp -m tcp --dport 80 -m comment --comment $TAG")
else
  jumps+=("nat PREROUTING $PODS_CHAIN -d $IMDS_ADDRESS/32 -p tcp -m tcp --dport 80 -m comment --comment $TAG")
  jumps+=("filter INPUT $GUARD_CHAIN -d $address/32 -p tcp -m tcp --dport $port -m comment --comment $TAG")
fi

# The rules inside our chain, in iptables-restore syntax.
chain_rules() {
  case "$1" in
    "$HOST_CHAIN")
      echo "-A $HOST_CHAIN -m owner --uid-owner $uid -j RETURN"
      echo "-A $HOST_CHAIN -p tcp -j DNAT --to-destination 127.0.0.1:$port"
      ;;
    "$PODS_CHAIN")
      if [ -n "$pod_interface" ]; then
        echo "-A $PODS_CHAIN -i $pod_interface -p tcp -j DNAT --to-destination $address:$port"
      else
        echo "-A $PODS_CHAIN ! -i lo -p tcp -j DNAT --to-destination $address:$port"
      fi
      ;;
    "$GUARD_CHAIN")
      echo "-A $GUARD_CHAIN -i lo -j RETURN"
      echo "-A $GUARD_CHAIN -m conntrack --ctstate DNAT --ctorigdst $IMDS_ADDRESS/32 -j RETURN"
      echo "-A $GUARD_CHAIN -j DROP"
      ;;
  esac
}

# Existing jumps from a built-in chain to ours, as "-D ..." lines (reads state; needs root).
existing_jumps() {
  local table="$1" builtin="$2" chain="$3"
  "$IPTABLES" -w -t "$table" -S "$builtin" | awk -v c="$chain" '$1 == "-A" && $(NF-1) == "-j" && $NF == c { $1 = "-D"; print }'
}
chain_exists() {
  "$IPTABLES" -w -t "$1" -S "$2" >/dev/null 2>&1
}

# Builds the iptables-restore input. With $1 = live, it reads the current rules so that
# stale jumps are deleted in the same transaction; otherwise it assumes a clean system.
render() {
  local live="${1:-}" entry table builtin chain match current=""
  for entry in "${jumps[@]}"; do
    read -r table builtin chain match <<<"$entry"
    if [ "$table" != "$current" ]; then
      [ -z "$current" ] || echo "COMMIT"
      echo "*$table"
      current="$table"
    fi
    if [ "$action" = remove ]; then
      if [ "$live" = live ]; then
        existing_jumps "$table" "$builtin" "$chain"
        if chain_exists "$table" "$chain"; then
          echo "-F $chain"
          echo "-X $chain"
        fi
      else
        echo "-D $builtin $match -j $chain"
        echo "-F $chain"
        echo "-X $chain"
      fi
    else
      # Declaring the chain creates it, or empties it if it exists (even with --noflush).
      echo ":$chain - [0:0]"
      [ "$live" = live ] && existing_jumps "$table" "$builtin" "$chain"
      chain_rules "$chain"
      echo "-I $builtin 1 $match -j $chain"
    fi
  done
  echo "COMMIT"
}

if [ "$dry_run" = 1 ]; then
  echo "# imds-redirect $action --mode $mode: iptables-restore --noflush input (dry run, nothing applied)"
  [ "$uid_placeholder" = 0 ] ||
    echo "# no user \"$user\" on this host: $uid stands for its uid (install resolves it, and refuses without the user)"
  render
  exit 0
fi

[ "$(id -u)" = 0 ] || die "$action needs root (or run: $0 print)"
command -v "$IPTABLES" >/dev/null || die "$IPTABLES not found (apt-get install iptables)"
command -v "$RESTORE" >/dev/null || die "$RESTORE not found (apt-get install iptables)"

rules="$(render live)"
if [ "$action" = remove ] && ! grep -q '^-' <<<"$rules"; then
  echo "imds-redirect: nothing to remove ($mode mode)"
  exit 0
fi
"$RESTORE" -w --noflush <<<"$rules" || die "$RESTORE refused the rules; nothing was changed. They were:
$rules"
echo "imds-redirect: $action done ($mode mode)"
