#!/usr/bin/env bash
# Builds the real control-plane tools the integration harness runs, from Go
# modules, into a cache folder outside the clone so that every clone on this
# machine shares them. A tool whose inputs are unchanged is skipped.
#
#   integration/tools/build.sh            build what is missing, print the dir
#   NODEMESH_TOOLS_DIR=... build.sh       use another cache folder
#
# Progress goes to stderr as a step counter; the folder goes to stdout.
set -euo pipefail

K8S_VERSION=v1.37.2
ETCD_VERSION=v3.6.16
COREDNS_VERSION=v1.13.1

here="$(cd "$(dirname "$0")" && pwd)"
dir="${NODEMESH_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nodemesh/tools-k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}-coredns-${COREDNS_VERSION}}"
mkdir -p "$dir"

k8s_ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=${K8S_VERSION} \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=37 \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=${K8S_VERSION} \
 -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=37"

# name  module-dir  package  ldflags
tools=(
  "etcd|etcd|.|-s -w"
  "coredns|coredns|.|-s -w"
  "kube-apiserver|k8s|./cmd/kube-apiserver|${k8s_ldflags}"
  "kube-controller-manager|k8s|./cmd/kube-controller-manager|${k8s_ldflags}"
  "kube-proxy|k8s|./cmd/kube-proxy|${k8s_ldflags}"
  "kubectl|k8s|./cmd/kubectl|${k8s_ldflags}"
)

total=${#tools[@]}
i=0
for entry in "${tools[@]}"; do
  IFS='|' read -r name mod pkg ldflags <<<"$entry"
  i=$((i + 1))
  # The stamp covers everything that decides the binary: module files, the
  # main package, the flags and the Go version.
  stamp="$( (cat "$here/$mod/go.mod" "$here/$mod/go.sum"; cat "$here/$mod/$pkg"/*.go; echo "$ldflags"; go version) | sha256sum | cut -c1-16)"
  if [[ -x "$dir/$name" && -f "$dir/$name.stamp" && "$(cat "$dir/$name.stamp")" == "$stamp" ]]; then
    echo "[$i/$total] $name: up to date" >&2
    continue
  fi
  start=$(date +%s)
  # A ticker shows the elapsed time, so a cold build is never a silent wait.
  # It sleeps a second at a time: killing it leaves its current sleep
  # running, and that sleep holds the script's stderr (and whatever reads
  # it) open until it ends. Its stdout goes nowhere, so that the caller's
  # $(build.sh) never waits for it.
  (
    interval=5; [[ -t 2 ]] || interval=30
    ticks=0
    while sleep 1; do
      ticks=$((ticks + 1))
      ((ticks % interval == 0)) || continue
      if [[ -t 2 ]]; then
        printf '\r[%d/%d] %s: building ... %ds ' "$i" "$total" "$name" $(( $(date +%s) - start )) >&2
      else
        printf '[%d/%d] %s: building ... %ds\n' "$i" "$total" "$name" $(( $(date +%s) - start )) >&2
      fi
    done
  ) >/dev/null &
  ticker=$!
  # "|| true": under set -e a failing command in an EXIT trap becomes the
  # script's exit status, and the ticker is already gone when the script
  # ends normally. A failed build keeps its own status.
  trap 'kill $ticker 2>/dev/null || true' EXIT
  echo "[$i/$total] $name: building (a cold build takes minutes) ..." >&2
  (cd "$here/$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$dir/$name.tmp" "$pkg")
  kill $ticker 2>/dev/null; wait $ticker 2>/dev/null || true
  [[ -t 2 ]] && printf '\n' >&2
  mv "$dir/$name.tmp" "$dir/$name"
  echo "$stamp" >"$dir/$name.stamp"
  echo "[$i/$total] $name: built in $(( $(date +%s) - start ))s" >&2
done
trap - EXIT
echo "$dir"
