#!/usr/bin/env bash
# Stands backup-pilot up with the az CLI: registers resource providers, deploys the service
# (infra/service), builds the Linux release binary, packages it with host.json and the function folders,
# deploys the zip, and opens target subscriptions (infra/target). infra/README.md walks through it.
# JSON from az is read from stdout only; az's stderr (warnings, progress) goes to a log that is
# shown when a command fails (guide gotcha 7). No secret is read, written or printed here.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
infra="$repo/infra"
dist=${BACKUP_PILOT_DIST:-$repo/dist}
service_deployment=backup-pilot-service
target_deployment=backup-pilot-target
az_log=$(mktemp)
trap 'rm -f "$az_log"' EXIT

usage() {
  cat <<'EOF'
Usage: infra/deploy.sh COMMAND [OPTIONS]

Commands:
  providers -s SUBSCRIPTION [--service|--target]
      Register the resource providers a service or target subscription needs (both by
      default) and wait until they are Registered.
  service -s SUBSCRIPTION -g RESOURCE_GROUP -l LOCATION [-p NAME=VALUE]...
      Create the resource group, deploy infra/service/main.bicep (parameters -p are passed
      through), then build and deploy the code (as 'code').
  code -s SUBSCRIPTION -g RESOURCE_GROUP [-n FUNCTION_APP]
      Build the Linux release binary, package it (cargo run --release -p aks-backup-pilot -- package), zip it and
      deploy it to the function app (default: the service deployment's output).
  target -s TARGET_SUBSCRIPTION -l LOCATION --service-subscription SUB --service-group RG [-p NAME=VALUE]...
      Deploy infra/target/main.bicep to a subscription whose AKS clusters the service protects.

Environment:
  BACKUP_PILOT_TARGET  Rust target triple to build for (e.g. x86_64-unknown-linux-musl for a
                       static binary); default: the host, which must be Linux x86_64.
  BACKUP_PILOT_DIST    Where the app folder and zip are staged (default: <repo>/dist).
EOF
}

die() {
  echo "deploy.sh: $*" >&2
  exit 1
}

# Runs az with JSON on stdout and everything else in the log; prints the log on failure.
az_json() {
  if ! az "$@" --only-show-errors -o json 2>"$az_log"; then
    echo "deploy.sh: az $1 ${2:-} failed:" >&2
    cat "$az_log" >&2
    exit 1
  fi
}

# Prints one field of a JSON document given on stdin (dotted path); fails if it is missing or
# the input is not pure JSON (for example a warning printed into it).
json_field() {
  python3 -c '
import json, sys
path = sys.argv[1]
try:
    value = json.load(sys.stdin)
except ValueError as e:
    sys.exit(f"deploy.sh: az output is not JSON ({e}); was a warning printed to stdout?")
for key in path.split("."):
    if not isinstance(value, dict) or key not in value:
        sys.exit(f"deploy.sh: az output has no {path}")
    value = value[key]
if isinstance(value, (dict, list)):
    sys.exit(f"deploy.sh: {path} is not a scalar")
print(value)
' "$1"
}

require_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required but not on PATH"
  done
}

# Resource providers: the guide's two plus what the service and the target deployments create.
service_providers=(Microsoft.Web Microsoft.ServiceBus Microsoft.Storage Microsoft.Insights
  Microsoft.OperationalInsights Microsoft.ManagedIdentity)
target_providers=(Microsoft.KubernetesConfiguration Microsoft.DataProtection
  Microsoft.ContainerService Microsoft.Storage Microsoft.EventGrid)

cmd_providers() {
  local subscription="" which=both
  while (($#)); do
    case $1 in
      -s) subscription=${2:?}; shift 2 ;;
      --service) which=service; shift ;;
      --target) which=target; shift ;;
      *) die "providers: unknown option $1" ;;
    esac
  done
  [[ -n $subscription ]] || die "providers: -s SUBSCRIPTION is required"
  require_tools az python3
  local -a namespaces=()
  [[ $which != target ]] && namespaces+=("${service_providers[@]}")
  [[ $which != service ]] && namespaces+=("${target_providers[@]}")
  local namespace state attempt
  for namespace in $(printf '%s\n' "${namespaces[@]}" | sort -u); do
    az_json provider register --namespace "$namespace" --subscription "$subscription" >/dev/null
    for ((attempt = 1; ; attempt++)); do
      state=$(az_json provider show --namespace "$namespace" --subscription "$subscription" |
        json_field registrationState)
      [[ $state == Registered ]] && break
      ((attempt < 60)) || die "$namespace is still $state after 10 minutes"
      sleep 10
    done
    echo "$namespace: Registered"
  done
}

# Builds the release binary for Linux, stages $dist/app (host.json, the binary and one folder
# per function beside host.json, where the Functions host looks for them) and zips it to
# $dist/app.zip.
build_package() {
  require_tools cargo python3
  local -a target_args=()
  if [[ -n ${BACKUP_PILOT_TARGET:-} ]]; then
    target_args=(--target "$BACKUP_PILOT_TARGET")
  elif [[ $(uname -s) != Linux || $(uname -m) != x86_64 ]]; then
    die "Flex Consumption runs Linux x86_64 binaries; set BACKUP_PILOT_TARGET=x86_64-unknown-linux-musl to cross-compile"
  fi
  (
    cd "$repo"
    cargo build --release -p aks-backup-pilot ${target_args[@]+"${target_args[@]}"}
    rm -rf "$dist/app" "$dist/app.zip"
    cargo run --release -p aks-backup-pilot ${target_args[@]+"${target_args[@]}"} -- package --out "$dist/app"
  )
  if [[ ! -f $dist/app/host.json ]] || ! compgen -G "$dist/app/*/function.json" >/dev/null; then
    die "cargo run -- package did not stage host.json and the function folders in $dist/app"
  fi
  # Zip the folder's contents (not the folder), keeping the binary's executable bit.
  (
    cd "$dist/app"
    python3 - <<'PY'
import os, zipfile
with zipfile.ZipFile("../app.zip", "w", zipfile.ZIP_DEFLATED) as z:
    for root, dirs, files in os.walk("."):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            z.write(path, os.path.relpath(path, "."))
PY
  )
}

cmd_code() {
  local subscription="" group="" app=""
  while (($#)); do
    case $1 in
      -s) subscription=${2:?}; shift 2 ;;
      -g) group=${2:?}; shift 2 ;;
      -n) app=${2:?}; shift 2 ;;
      *) die "code: unknown option $1" ;;
    esac
  done
  [[ -n $subscription && -n $group ]] || die "code: -s SUBSCRIPTION and -g RESOURCE_GROUP are required"
  require_tools az python3
  if [[ -z $app ]]; then
    app=$(az_json deployment group show -g "$group" -n "$service_deployment" --subscription "$subscription" |
      json_field properties.outputs.functionAppName.value)
  fi
  build_package
  az_json functionapp deployment source config-zip -g "$group" -n "$app" \
    --subscription "$subscription" --src "$dist/app.zip" --build-remote false >/dev/null
  # The host indexes the new package after the deployment returns: wait (bounded) until it
  # lists every function staged beside host.json.
  local expected missing attempt
  expected=$(cd "$dist/app" && for f in */function.json; do printf '%s\n' "${f%/function.json}"; done)
  for ((attempt = 1; ; attempt++)); do
    missing=$(az_json functionapp function list -g "$group" -n "$app" --subscription "$subscription" |
      python3 -c '
import json, sys
listed = {f["name"].split("/")[-1] for f in json.load(sys.stdin)}
print(" ".join(sorted(set(sys.argv[1].split()) - listed)))
' "$expected")
    [[ -z $missing ]] && break
    ((attempt < 30)) || die "the host does not list these functions after 5 minutes: $missing"
    sleep 10
  done
  echo "Deployed $dist/app.zip to $app; the host lists: $(tr '\n' ' ' <<<"$expected")"
}

cmd_service() {
  local subscription="" group="" location=""
  local -a params=()
  while (($#)); do
    case $1 in
      -s) subscription=${2:?}; shift 2 ;;
      -g) group=${2:?}; shift 2 ;;
      -l) location=${2:?}; shift 2 ;;
      -p) params+=("${2:?}"); shift 2 ;;
      *) die "service: unknown option $1" ;;
    esac
  done
  [[ -n $subscription && -n $group && -n $location ]] ||
    die "service: -s SUBSCRIPTION, -g RESOURCE_GROUP and -l LOCATION are required"
  require_tools az python3
  az_json group create -n "$group" -l "$location" --subscription "$subscription" >/dev/null
  az_json deployment group create -g "$group" -n "$service_deployment" --subscription "$subscription" \
    -f "$infra/service/main.bicep" -p location="$location" ${params[@]+"${params[@]}"} >/dev/null
  local outputs principal app
  outputs=$(az_json deployment group show -g "$group" -n "$service_deployment" --subscription "$subscription")
  principal=$(printf '%s' "$outputs" | json_field properties.outputs.servicePrincipalId.value)
  app=$(printf '%s' "$outputs" | json_field properties.outputs.functionAppName.value)
  echo "Service identity principal id: $principal"
  cmd_code -s "$subscription" -g "$group" -n "$app"
}

cmd_target() {
  local subscription="" location="" service_subscription="" service_group=""
  local -a params=()
  while (($#)); do
    case $1 in
      -s) subscription=${2:?}; shift 2 ;;
      -l) location=${2:?}; shift 2 ;;
      --service-subscription) service_subscription=${2:?}; shift 2 ;;
      --service-group) service_group=${2:?}; shift 2 ;;
      -p) params+=("${2:?}"); shift 2 ;;
      *) die "target: unknown option $1" ;;
    esac
  done
  [[ -n $subscription && -n $location && -n $service_subscription && -n $service_group ]] ||
    die "target: -s, -l, --service-subscription and --service-group are required"
  require_tools az python3
  # Each value is read into a variable first: a failed read then stops the script (a failed
  # command substitution inside another command's arguments would not).
  local outputs principal queue storage container
  outputs=$(az_json deployment group show -g "$service_group" -n "$service_deployment" \
    --subscription "$service_subscription")
  principal=$(printf '%s' "$outputs" | json_field properties.outputs.servicePrincipalId.value)
  queue=$(printf '%s' "$outputs" | json_field properties.outputs.clusterEventsQueueId.value)
  storage=$(printf '%s' "$outputs" | json_field properties.outputs.eventDeadLetterStorageId.value)
  container=$(printf '%s' "$outputs" | json_field properties.outputs.eventDeadLetterContainer.value)
  az_json deployment sub create --subscription "$subscription" -l "$location" \
    -n "$target_deployment" -f "$infra/target/main.bicep" \
    -p servicePrincipalId="$principal" -p clusterEventsQueueId="$queue" \
    -p eventDeadLetterStorageId="$storage" -p eventDeadLetterContainer="$container" \
    ${params[@]+"${params[@]}"} >/dev/null
  echo "Target subscription $subscription: operator role, conditioned RBAC administrator and cluster events are in place."
}

main() {
  (($#)) || {
    usage
    exit 2
  }
  local command=$1
  shift
  case $command in
    providers) cmd_providers "$@" ;;
    service) cmd_service "$@" ;;
    code) cmd_code "$@" ;;
    target) cmd_target "$@" ;;
    -h | --help | help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
