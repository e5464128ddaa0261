#!/usr/bin/env bash
# Build a real OpenBao `bao` binary for the test harness, from the Go module proxy.
#
# Result: ${PROVKEY_TEST_CACHE:-$HOME/.cache/provkey-test}/openbao/bin/bao
# The binary path is printed as the last line of stdout. Idempotent: if the
# binary exists and `bao version` runs, this is a fast no-op.
#
# Why a wrapper module: OpenBao's go.mod has replace directives
# (api/v2 => ./api, sdk/v2 => ./sdk, ...), so `go install module@version` is
# refused. Its v2.x git tags do not match its module path (github.com/openbao/openbao,
# no /v2), so it is required by pseudo-version (the proxy's name for the release
# commit). The nested modules (api/v2, sdk/v2, ...) are not in the main module's
# zip, so the wrapper requires their published versions instead; those that the
# proxy does not serve and that the server binary never imports (only tests do)
# are replaced with empty stub modules.
#
# Env overrides:
#   PROVKEY_TEST_CACHE      cache root (default $HOME/.cache/provkey-test)
#   PROVKEY_OPENBAO_MODVER  pseudo-version of github.com/openbao/openbao to build
#   PROVKEY_OPENBAO_VERSION version string stamped into the binary
#   PROVKEY_OPENBAO_REBUILD=1  rebuild even if the binary works
set -euo pipefail

# OpenBao v2.4.0 release: tag v2.4.0 = commit f9407a27fbee45f62ba521bba2bf1e2360c61031
# (CHANGELOG "## 2.4.0 / August 28, 2025"; go.mod requires api/v2 and sdk/v2 v2.4.0).
MODVER="${PROVKEY_OPENBAO_MODVER:-v0.0.0-20250828202315-f9407a27fbee}"
BAO_VERSION="${PROVKEY_OPENBAO_VERSION:-2.4.0}"
MODPATH="github.com/openbao/openbao"

CACHE_ROOT="${PROVKEY_TEST_CACHE:-${HOME:-/tmp}/.cache/provkey-test}"
ROOT="$CACHE_ROOT/openbao"
BIN="$ROOT/bin/bao"

log() { printf '[openbao.sh] %s\n' "$*" >&2; }

if [[ "${PROVKEY_OPENBAO_REBUILD:-0}" != 1 && -x "$BIN" ]] && "$BIN" version >/dev/null 2>&1; then
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null 2>&1 || { log "go toolchain not found on PATH"; exit 1; }

mkdir -p "$ROOT/bin"
# One build at a time per cache dir (parallel test workers may all call this).
exec 9>"$ROOT/.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi
# Another process may have finished the build while we waited for the lock.
if [[ "${PROVKEY_OPENBAO_REBUILD:-0}" != 1 && -x "$BIN" ]] && "$BIN" version >/dev/null 2>&1; then
  echo "$BIN"
  exit 0
fi

export GOFLAGS=-mod=mod
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export GOWORK=off

WRAP="$ROOT/wrapper"
rm -rf "$WRAP"
mkdir -p "$WRAP/stubs"
cd "$WRAP"

start=$(date +%s)
log "fetching $MODPATH@$MODVER"
go mod download "$MODPATH@$MODVER"
SRC="$(go env GOMODCACHE)/$MODPATH@$MODVER"
[[ -f "$SRC/go.mod" ]] || { log "module source not found at $SRC"; exit 1; }

# Nested modules named in the upstream go.mod's local replace directives
# (e.g. "replace github.com/openbao/openbao/sdk/v2 => ./sdk"), one line each: "module".
mapfile -t LOCAL_REPLACED < <(awk '
  /^replace[ \t]*\(/ { inblock = 1; next }
  inblock && /^\)/   { inblock = 0; next }
  { line = $0; sub(/^replace[ \t]+/, "", line) }
  (inblock || $0 ~ /^replace[ \t]/) && line ~ /=>[ \t]*\.\.?\// {
    split(line, f, /[ \t]+/); print f[1]
  }' "$SRC/go.mod")

# The versions upstream requires for them (go list -m works on the upstream go.mod
# only from inside that module; read the require lines instead).
required_version() {
  awk -v m="$1" '{ for (i = 1; i < NF; i++) if ($i == m && $(i+1) ~ /^v[0-9]/) { print $(i+1); exit } }' "$SRC/go.mod"
}

{
  echo "module provkey.local/openbao-build"
  echo
  echo "go $(awk '/^go /{print $2; exit}' "$SRC/go.mod")"
  echo
  echo "require $MODPATH $MODVER"
} > go.mod
# Seed go.sum with upstream's: the checksum database mirror reached here answers 404
# for some dependencies (e.g. github.com/openbao/go-kms-wrapping/wrappers/aead/v2),
# and upstream's go.sum already pins those hashes, so go need not ask for them.
cp "$SRC/go.sum" go.sum
chmod u+w go.sum

for mod in "${LOCAL_REPLACED[@]}"; do
  ver="$(required_version "$mod")"
  if [[ -n "$ver" ]] && go mod download "$mod@$ver" >/dev/null 2>&1; then
    log "using published $mod@$ver"
    go mod edit -require="$mod@$ver"
  else
    # Not served by the proxy: fine as long as the binary imports no package of it
    # (OpenBao imports api/auth/* only from tests). An empty stub module keeps
    # the module graph loadable; the build fails loudly if it is really needed.
    stub="stubs/$(echo "$mod" | tr '/.' '__')"
    mkdir -p "$stub"
    printf 'module %s\n\ngo 1.21\n' "$mod" > "$stub/go.mod"
    log "stubbing $mod${ver:+@$ver} (not served by the module proxy)"
    go mod edit -replace="$mod=./$stub"
    if [[ -n "$ver" ]]; then go mod edit -require="$mod@$ver"; fi
  fi
done

# Non-local replace directives of the upstream go.mod (module => module version)
# must be copied too, since replace directives only apply in the main module.
awk '
  /^replace[ \t]*\(/ { inblock = 1; next }
  inblock && /^\)/   { inblock = 0; next }
  { line = $0; sub(/^replace[ \t]+/, "", line) }
  (inblock || $0 ~ /^replace[ \t]/) && line ~ /=>/ && line !~ /=>[ \t]*\.\.?\// {
    sub(/[ \t]*\/\/.*$/, "", line); gsub(/^[ \t]+|[ \t]+$/, "", line)
    split(line, p, /[ \t]*=>[ \t]*/)
    n = split(p[1], l, /[ \t]+/); m = split(p[2], r, /[ \t]+/)
    lhs = l[1] (n > 1 ? "@" l[2] : ""); rhs = r[1] (m > 1 ? "@" r[2] : "")
    print lhs "=" rhs
  }' "$SRC/go.mod" | while read -r rep; do
    log "copying upstream replace $rep"
    go mod edit -replace="$rep"
  done

log "wrapper go.mod:"
sed 's/^/    /' go.mod >&2

commit="$(go mod download -json "$MODPATH@$MODVER" | awk -F'"' '/"Hash"/ {print $4; exit}')"
ldflags="-s -w -X $MODPATH/version.fullVersion=$BAO_VERSION"
if [[ -n "$commit" ]]; then ldflags="$ldflags -X $MODPATH/version.GitCommit=$commit"; fi
ldflags="$ldflags -X $MODPATH/version.BuildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"

log "building bao (CGO_ENABLED=0, -trimpath); this can take many minutes on 2 cores"
tmpbin="$ROOT/bin/.bao.tmp.$$"
if ! CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmpbin" "$MODPATH"; then
  log "CGO_ENABLED=0 build failed; retrying with cgo enabled"
  CGO_ENABLED=1 go build -trimpath -ldflags "$ldflags" -o "$tmpbin" "$MODPATH"
fi
mv -f "$tmpbin" "$BIN"
"$BIN" version >&2
log "built in $(( $(date +%s) - start ))s"
echo "$BIN"
