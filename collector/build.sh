#!/usr/bin/env bash
# Build the bridge's OpenTelemetry Collector distribution (OCB, from builder-config.yaml) and Jaeger v2
# from their Go modules, once: binaries are cached under $INSPECT_OTEL_CACHE/bin keyed by a hash of what
# they are built from, so a rerun with an unchanged manifest/version only prints the paths.
#
# usage: collector/build.sh [all|collector|jaeger]     (default: all)
# stdout: one "collector=<path>" / "jaeger=<path>" line per built target (for scripts and tests);
# progress and errors go to stderr. Uses Go's default GOMODCACHE/GOCACHE so module downloads persist.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MANIFEST="${OTELCOL_BUILDER_MANIFEST:-$HERE/builder-config.yaml}"
JAEGER_VERSION="${JAEGER_VERSION:-v1.76.0}"   # Go module version of the Jaeger v2 binary (image 2.x)
CACHE="${INSPECT_OTEL_CACHE:-$HOME/.cache/inspect-otel-bridge}"
BIN="$CACHE/bin"
WORK="$CACHE/work"
TARGET="${1:-all}"

log() { printf '[build.sh] %s\n' "$*" >&2; }
die() { printf '[build.sh] ERROR: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "Go is not installed (need Go >= 1.26: the collector builder requires it)"
case "$TARGET" in all|collector|jaeger) ;; *) die "unknown target '$TARGET' (use all, collector or jaeger)";; esac
mkdir -p "$BIN" "$WORK"

# One build of each target at a time per cache dir (parallel test sessions, CI retries).
lock() { if command -v flock >/dev/null 2>&1; then exec 9>"$CACHE/build-$1.lock"; flock 9; fi; }

build_collector() {
  lock collector
  [ -f "$MANIFEST" ] || die "manifest not found: $MANIFEST"
  local name ocb_version key out
  name="$(sed -n 's/^[[:space:]]*name:[[:space:]]*\([A-Za-z0-9_.-]*\).*/\1/p' "$MANIFEST" | head -n1)"
  ocb_version="$(sed -n 's#.*go\.opentelemetry\.io/collector/receiver/otlpreceiver \(v[0-9.]*\).*#\1#p' "$MANIFEST" | head -n1)"
  [ -n "$name" ] || die "no dist.name in $MANIFEST"
  [ -n "$ocb_version" ] || die "cannot find the otlpreceiver version (= builder version) in $MANIFEST"
  # Key: the manifest without comments/blank lines, and the Go toolchain/platform.
  key="$( (sed -e '/^[[:space:]]*#/d' -e 's/[[:space:]]#.*$//' -e '/^[[:space:]]*$/d' "$MANIFEST"
           go env GOVERSION GOOS GOARCH) | sha256sum | cut -c1-12)"
  out="$BIN/$name-$key"
  if [ -x "$out" ]; then
    log "collector up to date: $out"
  else
    local ocb_dir="$CACHE/tools/ocb-$ocb_version" start=$SECONDS
    if [ ! -x "$ocb_dir/builder" ]; then
      log "installing the collector builder $ocb_version"
      GOBIN="$ocb_dir" go install "go.opentelemetry.io/collector/cmd/builder@$ocb_version" \
        || die "go install go.opentelemetry.io/collector/cmd/builder@$ocb_version failed"
    fi
    local dir="$WORK/$name-$key"
    rm -rf "$WORK/$name"-* && mkdir -p "$dir"   # also leftovers of interrupted builds
    # Same manifest, but generate the sources inside the cache, not in the repo.
    sed "s#^\([[:space:]]*output_path:\).*#\1 $dir/src#" "$MANIFEST" > "$dir/manifest.yaml"
    log "building the collector '$name' with OCB $ocb_version (cold: several minutes)"
    "$ocb_dir/builder" --config "$dir/manifest.yaml" >"$dir/build.log" 2>&1 || {
      tail -n 40 "$dir/build.log" >&2
      die "collector build failed (full log: $dir/build.log)"
    }
    [ -x "$dir/src/$name" ] || die "builder finished but $dir/src/$name is missing (log: $dir/build.log)"
    mv -f "$dir/src/$name" "$out.tmp" && mv -f "$out.tmp" "$out"
    rm -rf "$dir"   # generated sources; Go's module and build caches keep what a rebuild needs
    log "collector built in $((SECONDS - start)) s: $out"
  fi
  ln -sfn "$(basename "$out")" "$BIN/$name"
  echo "collector=$out"
}

build_jaeger() {
  lock jaeger
  local key out
  key="$(printf '%s\n' "$JAEGER_VERSION" "$(go env GOVERSION GOOS GOARCH)" | sha256sum | cut -c1-12)"
  out="$BIN/jaeger-$JAEGER_VERSION-$key"
  if [ -x "$out" ]; then
    log "jaeger up to date: $out"
  else
    local dir="$WORK/jaeger-$JAEGER_VERSION" start=$SECONDS
    rm -rf "$dir" && mkdir -p "$dir"
    log "building Jaeger v2 (module github.com/jaegertracing/jaeger $JAEGER_VERSION; cold: many minutes)"
    (
      cd "$dir"
      go mod init inspect-otel-bridge/jaeger-build
      go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION"
      go build -trimpath -ldflags '-s -w' -o "$out.tmp" github.com/jaegertracing/jaeger/cmd/jaeger
    ) >"$dir/build.log" 2>&1 || {
      tail -n 40 "$dir/build.log" >&2
      die "jaeger build failed (full log: $dir/build.log)"
    }
    mv -f "$out.tmp" "$out"
    rm -rf "$dir"
    log "jaeger built in $((SECONDS - start)) s: $out"
  fi
  ln -sfn "$(basename "$out")" "$BIN/jaeger"
  echo "jaeger=$out"
}

case "$TARGET" in
  collector) build_collector ;;
  jaeger) build_jaeger ;;
  all) build_collector; build_jaeger ;;
esac
