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

# PostgreSQL on 127.0.0.1:5432 (trust auth): start the local cluster if it is down, install it
# from Debian's packages if it is missing.
ensure_postgres() {
  if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    return
  fi
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "installing PostgreSQL from Debian's packages" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do
    pg_isready -h 127.0.0.1 -p 5432 -q && return
    sleep 1
  done
  echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2
  exit 1
}

# Debian's Chromium and ChromeDriver drive the real UI in the browser tests.
ensure_chromium() {
  if command -v chromedriver >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1; then
    return
  fi
  echo "installing chromium and chromium-driver from Debian's packages" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
}

# kubectl, for `kubectl kustomize` (scripts/validate-deploy): the machine's, else Debian's
# kubernetes-client (1.20 on Debian 12, whose kustomize v2.0.3 the manifests are written for).
ensure_kubectl() {
  if command -v kubectl >/dev/null 2>&1; then
    return
  fi
  echo "installing kubernetes-client (kubectl) from Debian's packages" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client >/dev/null
}

# kubernetes-validate from PyPI (it carries the Kubernetes API's JSON schemas), in a virtual
# environment of its own under /var/tmp, kept between runs. Prints the environment's folder.
KUBERNETES_VALIDATE_VERSION=1.37.0
ensure_kubernetes_validate() {
  local venv="${FLOWGATE_DEPLOY_VENV:-/var/tmp/flowgate-deploy-venv}"
  if [ -x "$venv/bin/kubernetes-validate" ] &&
    [ "$("$venv/bin/kubernetes-validate" --version 2>/dev/null)" = "$KUBERNETES_VALIDATE_VERSION" ]; then
    echo "$venv"
    return
  fi
  echo "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION from PyPI into $venv" >&2
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -m venv --help >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
  fi
  rm -rf "$venv"
  # Debian's python3 has ensurepip only with python3-venv installed.
  if ! python3 -m venv "$venv" >&2; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >&2
  echo "$venv"
}
