#!/usr/bin/env bash
# A one-node Kubernetes cluster from real parts, for the real-node test (test/node) and for
# trying the image by hand: etcd and kube-apiserver (hack/envtest-binaries.sh),
# kube-controller-manager, kube-scheduler, kube-proxy and a kubelet (hack/node-binaries.sh),
# all of one Kubernetes version, running pods through containerd and runc from Debian, with
# pod networking by the CNI bridge plugin (Debian's containernetworking-plugins). No systemd:
# every process is started here, with its state under one directory. Needs root.
#
#   hack/node-cluster.sh up DIR             start it; KUBECONFIG=DIR/kubeconfig then works
#   hack/node-cluster.sh load DIR ARCHIVE…  import image archives (make image) into containerd
#   hack/node-cluster.sh down DIR           stop everything up started and remove its traces
#
# The node owns machine-wide names (the bridge hallpass0, 10.244.0.0/24 for pods,
# 10.96.0.0/24 for Services, kube-proxy's iptables chains, the kubepods cgroups, ports 10250
# and 10257-10259), so one such cluster runs on a machine at a time: test/node holds a lock.
# Everything listens on loopback or on the bridge, which only this machine's pods reach.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
NODE_NAME=hallpass-node
BRIDGE=hallpass0
POD_CIDR=10.244.0.0/24
NODE_IP=10.244.0.1 # the bridge's address: pods reach the API server (through kube-proxy) here
SERVICE_CIDR=10.96.0.0/24
API_PORT=16443
ETCD_PORT=12379
PAUSE_IMAGE=hallpass.local/pause:node

usage() { sed -n '9,11p' "$0" >&2; exit 2; }
(($# >= 2)) || usage
cmd="$1" DIR="$2"
shift 2

log() { printf '[node-cluster] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

ctr_() { ctr --address "$DIR/containerd/containerd.sock" -n k8s.io "$@"; }
kubectl_() { "$NODE_BIN/kubectl" --kubeconfig "$DIR/kubeconfig" "$@"; }

binaries() {
  ASSETS="${KUBEBUILDER_ASSETS:-$("$REPO/hack/envtest-binaries.sh")}"
  NODE_BIN="${HALLPASS_NODE_BIN:-$("$REPO/hack/node-binaries.sh")}"
}

# start NAME COMMAND… runs a process in the background with its log in DIR/logs/NAME.log.
start() {
  local name="$1"
  shift
  "$@" >"$DIR/logs/$name.log" 2>&1 &
  echo $! >"$DIR/pids/$name"
}

# wait_for WHAT SECONDS COMMAND… retries COMMAND once a second.
wait_for() {
  local what="$1" seconds="$2"
  shift 2
  for ((i = 0; i < seconds; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  die "$what: not within ${seconds}s (logs in $DIR/logs)"
}

# cert NAME CN ORG SANS signs a certificate for NAME with the cluster's CA.
cert() {
  local name="$1" cn="$2" org="$3" sans="$4" subj="/CN=$2"
  [[ -n "$org" ]] && subj="/O=$org/CN=$cn"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$DIR/pki/$name.key" \
    -out "$DIR/pki/$name.csr" -subj "$subj" 2>/dev/null
  printf 'extendedKeyUsage=serverAuth,clientAuth\n%s' "${sans:+subjectAltName=$sans}" >"$DIR/pki/$name.ext"
  openssl x509 -req -in "$DIR/pki/$name.csr" -CA "$DIR/pki/ca.crt" -CAkey "$DIR/pki/ca.key" -CAcreateserial \
    -days 7 -extfile "$DIR/pki/$name.ext" -out "$DIR/pki/$name.crt" 2>/dev/null
}

# kubeconfig NAME writes DIR/NAME.kubeconfig for the client certificate NAME.
kubeconfig() {
  cat >"$DIR/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: node
  cluster: {server: "https://$NODE_IP:$API_PORT", certificate-authority: "$DIR/pki/ca.crt"}
users:
- name: $1
  user: {client-certificate: "$DIR/pki/$1.crt", client-key: "$DIR/pki/$1.key"}
contexts:
- name: node
  context: {cluster: node, user: $1}
current-context: node
EOF
}

pki() {
  mkdir -p "$DIR/pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 -subj "/CN=hallpass-node-ca" \
    -keyout "$DIR/pki/ca.key" -out "$DIR/pki/ca.crt" 2>/dev/null
  openssl ecparam -genkey -name prime256v1 -noout -out "$DIR/pki/sa.key" 2>/dev/null
  openssl ec -in "$DIR/pki/sa.key" -pubout -out "$DIR/pki/sa.pub" 2>/dev/null
  local first_service_ip="${SERVICE_CIDR%.*}.1"
  cert apiserver kube-apiserver "" "IP:$NODE_IP,IP:127.0.0.1,IP:$first_service_ip,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters ""
  cert kubelet-serving "system:node:$NODE_NAME" system:nodes "IP:$NODE_IP,DNS:$NODE_NAME"
  cert admin hallpass-node-admin system:masters ""
  cert kubelet "system:node:$NODE_NAME" system:nodes ""
  cert controller-manager system:kube-controller-manager "" ""
  cert scheduler system:kube-scheduler "" ""
  cert proxy system:kube-proxy "" ""
  local c
  for c in admin kubelet controller-manager scheduler proxy; do kubeconfig "$c"; done
  mv "$DIR/admin.kubeconfig" "$DIR/kubeconfig"
}

network() {
  # The bridge exists before the API server, which listens on its address; the CNI bridge
  # plugin attaches each pod to it.
  ip link add "$BRIDGE" type bridge
  ip addr add "$NODE_IP/${POD_CIDR#*/}" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  mkdir -p "$DIR/cni/net.d"
  cat >"$DIR/cni/net.d/10-hallpass.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "hallpass-node",
  "plugins": [{
    "type": "bridge", "bridge": "$BRIDGE", "isDefaultGateway": true, "ipMasq": false, "hairpinMode": true,
    "ipam": {"type": "host-local", "dataDir": "$DIR/cni/ipam", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]]}
  }]
}
EOF
}

containerd_() {
  mkdir -p "$DIR/containerd"
  cat >"$DIR/containerd/config.toml" <<EOF
version = 2
root = "$DIR/containerd/root"
state = "$DIR/containerd/state"
[grpc]
  address = "$DIR/containerd/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$DIR/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  netns_mounts_under_state_dir = true
  # Without CAP_SYS_RESOURCE (a sandboxed machine) no process may lower its OOM score, and
  # runc fails to start the pause container at the kubelet's -998 ("can't get final child's
  # PID from pipe: EOF"): keep every container's score at or above containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$DIR/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
EOF
  start containerd containerd --config "$DIR/containerd/config.toml"
  wait_for "containerd answers" 30 ctr_ version
}

pause_image() {
  # No registry is reachable: the sandbox image is built here, like Hallpass's.
  (cd "$REPO" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$DIR/pause" ./hack/pause &&
    go run ./hack/image -binary "$DIR/pause" -entrypoint pause -ref "$PAUSE_IMAGE" -output "$DIR/pause.tar")
  ctr_ images import "$DIR/pause.tar" >&2
}

control_plane() {
  mkdir -p "$DIR/etcd"
  start etcd "$ASSETS/etcd" --data-dir "$DIR/etcd" --unsafe-no-fsync \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-cluster "default=http://127.0.0.1:$((ETCD_PORT + 1))" --listen-metrics-urls ""
  # --enable-aggregator-routing: the API server calls webhooks at their pods' addresses, as
  # no cluster DNS runs here.
  start kube-apiserver "$ASSETS/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port "$API_PORT" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --client-ca-file "$DIR/pki/ca.crt" --tls-cert-file "$DIR/pki/apiserver.crt" --tls-private-key-file "$DIR/pki/apiserver.key" \
    --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$DIR/pki/sa.pub" \
    --service-account-signing-key-file "$DIR/pki/sa.key" \
    --kubelet-client-certificate "$DIR/pki/apiserver-kubelet-client.crt" --kubelet-client-key "$DIR/pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$DIR/pki/ca.crt" --kubelet-preferred-address-types InternalIP \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction --enable-aggregator-routing=true
  wait_for "kube-apiserver is ready" 120 kubectl_ get --raw /readyz
  start kube-controller-manager "$NODE_BIN/kube-controller-manager" \
    --kubeconfig "$DIR/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$DIR/controller-manager.kubeconfig" --authorization-kubeconfig "$DIR/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 10257 --leader-elect=false --use-service-account-credentials \
    --service-account-private-key-file "$DIR/pki/sa.key" --root-ca-file "$DIR/pki/ca.crt" \
    --cluster-cidr "$POD_CIDR" --service-cluster-ip-range "$SERVICE_CIDR"
  start kube-scheduler "$NODE_BIN/kube-scheduler" \
    --kubeconfig "$DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig "$DIR/scheduler.kubeconfig" --authorization-kubeconfig "$DIR/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 10259 --leader-elect=false
}

node() {
  mkdir -p "$DIR/kubelet"
  # failCgroupV1: false lets the kubelet start on this machine's cgroup v1 hierarchies
  # (docs/adr/0018-real-node-kubernetes-version.md). Image garbage collection is off and
  # the eviction thresholds are low: the images cannot be pulled again, and the disk is
  # shared with the rest of the machine.
  cat >"$DIR/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$DIR/containerd/containerd.sock
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $DIR/pki/kubelet-serving.crt
tlsPrivateKeyFile: $DIR/pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $DIR/pki/ca.crt}
authorization: {mode: Webhook}
podCIDR: $POD_CIDR
maxPods: 30
failSwapOn: false
resolvConf: /etc/resolv.conf
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: 50Mi, nodefs.available: 1%, nodefs.inodesFree: 1%, imagefs.available: 1%}
serializeImagePulls: false
EOF
  start kubelet "$NODE_BIN/kubelet" --config "$DIR/kubelet/config.yaml" --kubeconfig "$DIR/kubelet.kubeconfig" \
    --root-dir "$DIR/kubelet/root" --cert-dir "$DIR/kubelet/pki" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --v 2
  # conntrack limits are the machine's: kube-proxy leaves them alone.
  start kube-proxy "$NODE_BIN/kube-proxy" --kubeconfig "$DIR/proxy.kubeconfig" --hostname-override "$NODE_NAME" \
    --proxy-mode iptables --cluster-cidr "$POD_CIDR" \
    --healthz-bind-address 127.0.0.1:10256 --metrics-bind-address 127.0.0.1:10249 \
    --conntrack-max-per-core 0 --conntrack-tcp-timeout-established 0 --conntrack-tcp-timeout-close-wait 0
  wait_for "node $NODE_NAME is Ready" 120 kubectl_ wait --for condition=Ready --timeout 1s "node/$NODE_NAME"
}

up() {
  [[ $(id -u) -eq 0 ]] || die "needs root (the kubelet and containerd manage mounts, cgroups and network namespaces)"
  local missing=()
  for c in containerd containerd-shim-runc-v2 runc ctr iptables openssl; do command -v "$c" >/dev/null || missing+=("$c"); done
  [[ -x /usr/lib/cni/bridge ]] || missing+=(/usr/lib/cni/bridge)
  ((${#missing[@]} == 0)) || die "missing ${missing[*]}: run hack/install-deps.sh --node"
  ! ip link show "$BRIDGE" >/dev/null 2>&1 || die "the bridge $BRIDGE exists: another node cluster runs, or one was not taken down (hack/node-cluster.sh down DIR)"
  binaries
  mkdir -p "$DIR/logs" "$DIR/pids"
  printf 'ASSETS=%q\nNODE_BIN=%q\n' "$ASSETS" "$NODE_BIN" >"$DIR/binaries"
  local started=$SECONDS
  pki
  network
  containerd_
  pause_image
  control_plane
  node
  log "node $NODE_NAME is Ready in $((SECONDS - started))s; export KUBECONFIG=$DIR/kubeconfig"
  echo "$DIR"
}

load() {
  local archive
  for archive in "$@"; do
    ctr_ images import "$archive" >&2
  done
}

# stop NAME ends one process that up started and waits for it.
stop() {
  local pidfile="$DIR/pids/$1"
  [[ -f "$pidfile" ]] || return 0
  local pid
  pid="$(cat "$pidfile")"
  if kill "$pid" 2>/dev/null; then
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

down() {
  [[ -d "$DIR" ]] || return 0
  # shellcheck disable=SC1091
  [[ -f "$DIR/binaries" ]] && source "$DIR/binaries"
  stop kube-proxy
  stop kubelet
  # The kubelet is gone, so nothing restarts the containers: kill them and their shims.
  if [[ -S "$DIR/containerd/containerd.sock" ]]; then
    local task
    for task in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s KILL "$task" 2>/dev/null || true; done
    sleep 1
    for task in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$task" >/dev/null 2>&1 || true; done
  fi
  stop kube-scheduler
  stop kube-controller-manager
  stop containerd
  stop kube-apiserver
  stop etcd
  if [[ -n "${NODE_BIN:-}" && -x "$NODE_BIN/kube-proxy" ]]; then
    "$NODE_BIN/kube-proxy" --cleanup --proxy-mode iptables >/dev/null 2>&1 || true
  fi
  # The kubelet's own chains: its canaries, the hint kube-proxy reads the iptables mode from,
  # and the firewall that drops non-loopback packets to 127.0.0.0/8.
  local ipt chain table
  for ipt in iptables ip6tables; do
    for chain in INPUT OUTPUT; do
      while "$ipt" -D "$chain" -j KUBE-FIREWALL 2>/dev/null; do :; done
    done
    "$ipt" -F KUBE-FIREWALL 2>/dev/null && "$ipt" -X KUBE-FIREWALL 2>/dev/null || true
    for table in filter nat mangle; do "$ipt" -t "$table" -X KUBE-KUBELET-CANARY 2>/dev/null || true; done
    "$ipt" -t mangle -X KUBE-IPTABLES-HINT 2>/dev/null || true
  done
  # Mounts under DIR (volumes, container root filesystems, network namespaces), deepest first.
  awk -v dir="$DIR/" 'index($2, dir) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  ip link delete "$BRIDGE" 2>/dev/null || true
  local hierarchy
  for hierarchy in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/unified/kubepods; do
    [[ -d "$hierarchy" ]] && find "$hierarchy" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  rm -rf "$DIR"
}

case "$cmd" in
up) up ;;
load) load "$@" ;;
down) down ;;
*) usage ;;
esac
