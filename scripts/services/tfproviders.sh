# scripts/services/tfproviders.sh: real Terraform provider binaries for the
# plugin-protocol tests (tests/it/terraform_*.rs). Sourced by scripts/test.
#
# No provider registry on the internet is reachable from these machines, but
# PyPI is, and some PyPI packages carry real provider binaries:
#   workato-terraform-provider 0.16.0  terraform-provider-workato, protocol 6,
#                                      terraform-plugin-framework 1.19, API
#                                      base URL configurable (`base_url`).
# It is downloaded once (cached under target/tf-providers), unpacked into a
# filesystem mirror in Terraform's layouts, and these are exported:
#   PLINTH_TEST_TF_MIRROR   unpacked mirror: registry.terraform.io/workato-devs/
#                           workato/0.16.0/linux_amd64/terraform-provider-…
#   PLINTH_TEST_TF_PACKED   packed mirror of the same provider (the release zip
#                           a registry serves): registry.terraform.io/
#                           workato-devs/workato/terraform-provider-workato_
#                           0.16.0_linux_amd64.zip
#   PLINTH_TEST_TF_AWS_MIRROR  /opt/tf-plugins when this machine has the aws
#                           provider 5.100.0 (protocol 5, the SDK) there; the
#                           image of these machines ships it, nothing fetches it.
# The installation tests (tests/it/terraform_install.rs) also need gpgv (what
# `plinth init` checks registry signatures with), gpg (to make the test
# registry's signing key) and openssl (its TLS CA): installed with apt-get
# when missing.
# Nothing is started, so there is nothing to stop.

TFPROVIDERS_SERVICE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

service_tfproviders_start() {
  local cache="$TFPROVIDERS_SERVICE_ROOT/target/tf-providers"
  local tmp="${PLINTH_TEST_TMP:?PLINTH_TEST_TMP must be set}"
  local wheel="$cache/workato_terraform_provider-0.16.0-py3-none-any.whl"
  local inner="workato_terraform_provider/payload/registry.terraform.io/local/workato/0.16.0/linux_amd64/terraform-provider-workato_v0.16.0"
  local mirror="$cache/mirror/registry.terraform.io/workato-devs/workato/0.16.0/linux_amd64"
  local packed="$cache/packed/registry.terraform.io/workato-devs/workato"
  mkdir -p "$cache"
  local tool missing=()
  for tool in gpgv:gpgv gpg:gnupg openssl:openssl; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
  done
  if ((${#missing[@]})); then
    echo "tfproviders: installing ${missing[*]} (signature checks and the test registry)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2 || {
      echo "tfproviders: could not install ${missing[*]}" >&2
      return 1
    }
  fi
  if [[ ! -f "$wheel" ]]; then
    echo "tfproviders: downloading workato-terraform-provider 0.16.0 from PyPI"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps \
      'workato-terraform-provider==0.16.0' -d "$cache" >"$tmp/tfproviders-pip.log" 2>&1 || {
      cat "$tmp/tfproviders-pip.log" >&2
      echo "tfproviders: pip download workato-terraform-provider failed" >&2
      return 1
    }
  fi
  if [[ ! -x "$mirror/terraform-provider-workato_v0.16.0" ]]; then
    rm -rf "$cache/unpack" "$cache/mirror" "$cache/packed"
    python3 - "$wheel" "$inner" "$mirror" "$packed" <<'PY'
import os, stat, sys, zipfile
wheel, inner, mirror, packed = sys.argv[1:]
os.makedirs(mirror, exist_ok=True)
os.makedirs(packed, exist_ok=True)
data = zipfile.ZipFile(wheel).read(inner)
binary = os.path.join(mirror, "terraform-provider-workato_v0.16.0")
with open(binary, "wb") as f:
    f.write(data)
os.chmod(binary, 0o755)
# The release archive as a registry serves it: one executable at the root.
zpath = os.path.join(packed, "terraform-provider-workato_0.16.0_linux_amd64.zip")
info = zipfile.ZipInfo("terraform-provider-workato_v0.16.0", date_time=(2025, 1, 1, 0, 0, 0))
info.external_attr = (stat.S_IFREG | 0o755) << 16
info.compress_type = zipfile.ZIP_DEFLATED
with zipfile.ZipFile(zpath, "w") as z:
    z.writestr(info, data)
PY
  fi
  export PLINTH_TEST_TF_MIRROR="$cache/mirror"
  export PLINTH_TEST_TF_PACKED="$cache/packed"
  if [[ -x /opt/tf-plugins/registry.terraform.io/hashicorp/aws/5.100.0/linux_amd64/terraform-provider-aws_v5.100.0_x5 ]]; then
    export PLINTH_TEST_TF_AWS_MIRROR=/opt/tf-plugins
  fi
  echo "tfproviders: workato 0.16.0 (protocol 6) in $PLINTH_TEST_TF_MIRROR${PLINTH_TEST_TF_AWS_MIRROR:+, aws 5.100.0 (protocol 5) in $PLINTH_TEST_TF_AWS_MIRROR}"
}

service_tfproviders_stop() {
  unset PLINTH_TEST_TF_MIRROR PLINTH_TEST_TF_PACKED PLINTH_TEST_TF_AWS_MIRROR
}
