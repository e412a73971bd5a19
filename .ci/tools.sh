# Sourced by .ci/run and by `make test` (so by `make check`): finds or installs the tools the
# infrastructure and browser tests need, the same way on a developer's machine and in CI.
# - TASKMANAGER_TF_MIRROR: the root of a local Terraform provider mirror (the folder holding
#   registry.terraform.io), found by looking for the hashicorp/aws provider binary.
# - checkov: the Terraform policy check, in a venv of its own (.venv-checkov): it pins its
#   own versions of boto3 and many other libraries, which must not move the project's.
# Whatever is still missing is named, with how to get it; the tests that need it skip
# locally and fail under CI=true.

if [ -z "${TASKMANAGER_TF_MIRROR:-}" ] && command -v terraform >/dev/null 2>&1; then
  _provider=$( (find / -path /proc -prune -o -name 'terraform-provider-aws_*' -print 2>/dev/null || true) | head -n1)
  if [ -n "$_provider" ]; then
    export TASKMANAGER_TF_MIRROR="${_provider%%/registry.terraform.io/*}"
  fi
  unset _provider
fi

if ! command -v checkov >/dev/null 2>&1; then
  if [ ! -x .venv-checkov/bin/checkov ] && command -v terraform >/dev/null 2>&1; then
    echo "== installing checkov into .venv-checkov (once)"
    python3 -m venv .venv-checkov && .venv-checkov/bin/pip install --quiet checkov
  fi
  if [ -x .venv-checkov/bin/checkov ]; then
    export PATH="$PWD/.venv-checkov/bin:$PATH"
  fi
fi

_missing=""
command -v terraform >/dev/null 2>&1 || _missing="$_missing
  - terraform (>= 1.7): https://developer.hashicorp.com/terraform/install (Terraform tests)"
[ -n "${TASKMANAGER_TF_MIRROR:-}" ] || _missing="$_missing
  - a provider mirror for hashicorp/aws: set TASKMANAGER_TF_MIRROR to the folder holding registry.terraform.io (Terraform tests)"
command -v checkov >/dev/null 2>&1 || _missing="$_missing
  - checkov: installed into .venv-checkov once terraform is present (policy test)"
{ command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } || _missing="$_missing
  - chromium and chromedriver: apt-get install chromium chromium-driver (browser test)"
command -v node >/dev/null 2>&1 || _missing="$_missing
  - node: apt-get install nodejs (evaluates the Conductor example's JavaScript condition)"
echo "== terraform provider mirror: ${TASKMANAGER_TF_MIRROR:-none found}"
if [ -n "$_missing" ]; then
  echo "== missing here; the tests that need them will skip (under CI=true they fail):$_missing"
fi
unset _missing
