# Shared set-up steps for scripts/run and scripts/test. Each is idempotent.

ensure_toolchain() {
  if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
      export PATH="$HOME/.cargo/bin:$PATH"
    else
      echo "cargo is missing: install Rust 1.94 or newer (https://rustup.rs) and run again" >&2
      exit 1
    fi
  fi
}

# The conformance suite reads the NetworkPolicy cases in ../shared/oracles (beside the clone).
ensure_oracles() {
  if [ ! -d ../shared/oracles/netpol-analyzer ]; then
    echo "warning: ../shared/oracles/netpol-analyzer is missing; the conformance test will fail" >&2
  fi
}
