# SAM checks for scripts/test.sh: `sam validate --lint` and the Makefile that `sam build` runs.
# Neither needs AWS credentials, the network or a build.

# Sets SAM to a SAM CLI: the one on PATH, else one installed from PyPI into its own virtual
# environment (aws-sam-cli pins botocore, Flask and cfn-lint; kept apart from moto's).
sam_cli_ensure() {
  if command -v sam >/dev/null 2>&1; then
    SAM="$(command -v sam)"
    return 0
  fi
  local venv="${XDG_CACHE_HOME:-$HOME/.cache}/salesagent/sam-cli"
  if [ ! -x "$venv/bin/sam" ]; then
    echo "==> installing aws-sam-cli (PyPI) into $venv"
    if python3 -m venv "$venv" >/dev/null 2>&1; then
      "$venv/bin/python" -m pip install --quiet --disable-pip-version-check aws-sam-cli
    else
      rm -rf "$venv"
      python3 -m pip install --quiet --disable-pip-version-check aws-sam-cli
      SAM="$(command -v sam)"
      return 0
    fi
  fi
  SAM="$venv/bin/sam"
}

# sam validate --lint (SAM's transform and cfn-lint over the transformed template). Offline:
# it needs a region, no credentials; telemetry off so nothing tries the network.
sam_validate_lint() {
  SAM_CLI_TELEMETRY=0 AWS_REGION="${AWS_REGION:-us-east-1}" \
    "$SAM" validate --lint --template template.yaml </dev/null
}

# Every AWS::Serverless::Function has a build-<LogicalId> target in the root Makefile, and every
# crate under functions/ is built by one of them (a new function cannot be forgotten).
sam_makefile_check() {
  local ids id crate missing=0
  ids="$(awk '/^  [A-Za-z0-9]+:$/ { id = $1; sub(":", "", id) }
              /^    Type: AWS::Serverless::Function$/ { print id }' template.yaml)"
  [ -n "$ids" ] || { echo "no AWS::Serverless::Function in template.yaml" >&2; return 1; }
  for id in $ids; do
    # A recipe, not just a .PHONY name (make treats a rule-less phony target as done).
    if ! grep -A1 "^build-$id:" Makefile | grep -q 'call lambda,'; then
      echo "Makefile has no target build-$id (template.yaml function $id)" >&2
      missing=1
    fi
  done
  for crate in functions/*/; do
    crate="$(basename "$crate")"
    if ! grep -q "call lambda,$crate," Makefile; then
      echo "no Makefile target builds functions/$crate" >&2
      missing=1
    fi
  done
  [ "$missing" -eq 0 ] && echo "Makefile: $(echo "$ids" | wc -w) functions, one build-<LogicalId> target each"
}
