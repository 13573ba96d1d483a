#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build, run and test ThermoAlert, and nothing
# it already has: Debian packages, the pinned Rust toolchain with the wasm32 target,
# cargo-leptos, wasm-bindgen-cli matching Cargo.lock, nightly Rust with cargo-fuzz, and the
# npm packages (wasm-opt from npm's binaryen, Playwright without a browser download: tests
# use Debian's Chromium).
# Idempotent; a second run takes seconds.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

CARGO_LEPTOS_VERSION=0.3.10
CARGO_FUZZ_VERSION=0.13.2
APT_PACKAGES=(build-essential pkg-config curl ca-certificates openjdk-17-jdk-headless maven
  chromium kafkacat wrk)

say() { echo "setup: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# ---- Debian packages
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come from elsewhere (NodeSource bundles npm): only the commands matter.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---- Rust (the toolchain and targets pinned in rust-toolchain.toml)
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v rustup >/dev/null 2>&1; then
  say "installing rustup"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain none
fi
rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install
if ! rustup target list --installed | grep -q wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown || {
    # Fallback kept beside the project for machines where rustup cannot fetch the target.
    fallback="$ROOT/../shared/toolchain/rust-std-1.95.0-wasm32-unknown-unknown.tar.xz"
    [ -f "$fallback" ] || { say "cannot install the wasm32 target"; exit 1; }
    say "installing the wasm32 target from $fallback"
    tar -xJf "$fallback" -C "$(rustc --print sysroot)/lib/rustlib"
  }
fi

# ---- cargo-leptos (exact version: newer ones need a newer rustc)
if ! cargo leptos --version 2>/dev/null | grep -q " $CARGO_LEPTOS_VERSION\$"; then
  # A build tool, not the product: built without LTO, in many codegen units and at
  # opt-level 1 (15 min 53 s on 2 cores, 2026-12-07; its own release profile took ~25).
  say "installing cargo-leptos $CARGO_LEPTOS_VERSION (once; ~16 min on 2 cores)"
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=256 \
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=false \
    cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked
fi

# ---- wasm-bindgen-cli: must match the wasm-bindgen of Cargo.lock exactly
wb_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
[ -n "$wb_version" ] || { say "wasm-bindgen not found in Cargo.lock"; exit 1; }
if ! wasm-bindgen --version 2>/dev/null | grep -q " $wb_version\$"; then
  say "installing wasm-bindgen-cli $wb_version"
  # Not --locked: one of its locked dependencies was yanked.
  cargo install wasm-bindgen-cli --version "$wb_version"
fi

# ---- Fuzzing: cargo-fuzz drives libFuzzer, whose instrumentation needs a nightly rustc
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  say "installing the nightly toolchain (for cargo fuzz only)"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION\$"; then
  say "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

# ---- npm packages (stamped by their lock file so a second run skips them)
npm_install() { # <dir>
  local dir=$1 stamp=$1/node_modules/.thermoalert-stamp
  if [ ! -f "$stamp" ] || ! cmp -s "$dir/package-lock.json" "$stamp"; then
    say "installing npm packages in ${dir#"$ROOT"/}"
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
    cp "$dir/package-lock.json" "$stamp"
  fi
}
npm_install "$ROOT"
npm_install "$ROOT/end2end"

say "ready"
