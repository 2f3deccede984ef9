#!/usr/bin/env bash
# Builds the .deb (build-deb.sh) and checks it with dpkg-deb (the files it installs, its control
# fields and its conffiles) and with lintian, which must report no error (E:). Run by .ci/run,
# which installs lintian.
set -euo pipefail
cd "$(dirname "$0")/../.."

bash deploy/debian/build-deb.sh
deb=$(ls "${CARGO_TARGET_DIR:-target}"/debian/nomad-alloc-table_*.deb)
files=$(dpkg-deb -c "$deb" | awk '{print $6}')
fail=0
for wanted in \
  ./usr/bin/nomad-alloc-table \
  ./usr/lib/systemd/system/nomad-alloc-table.service \
  ./usr/share/doc/nomad-alloc-table/examples/vector.service.d/10-nomad-alloc-table.conf \
  ./usr/share/doc/nomad-alloc-table/examples/vector/task-logs.yaml \
  ./usr/share/doc/nomad-alloc-table/examples/vector/labels.yaml \
  ./usr/share/doc/nomad-alloc-table/examples/vector/enrichment-table.yaml \
  ./usr/share/doc/nomad-alloc-table/examples/vector/vector.yaml \
  ./etc/nomad-alloc-table/env \
  ./usr/share/man/man1/nomad-alloc-table.1.gz \
  ./usr/share/man/man1/nomad-alloc-table-run.1.gz \
  ./usr/share/man/man1/nomad-alloc-table-check.1.gz \
  ./usr/share/bash-completion/completions/nomad-alloc-table \
  ./usr/share/zsh/vendor-completions/_nomad-alloc-table \
  ./usr/share/fish/vendor_completions.d/nomad-alloc-table.fish \
  ./usr/share/doc/nomad-alloc-table/changelog.Debian.gz \
  ./usr/share/doc/nomad-alloc-table/copyright; do
  if ! grep -qx -- "$wanted" <<<"$files"; then
    echo "the package lacks $wanted" >&2
    fail=1
  fi
done
# Nothing of Vector's unit is live: the drop-in is an example (it would start the exporter with
# the unedited env file whenever Vector starts).
if grep -q -- '^\./usr/lib/systemd/system/vector\.service\.d/\|^\./etc/systemd/system/vector\.service\.d/' <<<"$files"; then
  echo "the package installs a live drop-in for vector.service" >&2
  fail=1
fi
check_field() {
  local value
  value=$(dpkg-deb -f "$deb" "$1")
  if ! grep -q -- "$2" <<<"$value"; then
    echo "control field $1 is \"$value\", expected it to contain \"$2\"" >&2
    fail=1
  fi
}
check_field Package '^nomad-alloc-table$'
check_field Section '^admin$'
check_field Depends 'adduser'
check_field Recommends 'acl'
control=$(mktemp -d)
dpkg-deb -e "$deb" "$control"
if ! grep -qx /etc/nomad-alloc-table/env "$control/conffiles"; then
  echo "/etc/nomad-alloc-table/env is not a conffile" >&2
  fail=1
fi
if ! grep -q "adduser --system" "$control/postinst"; then
  echo "postinst creates no system user" >&2
  fail=1
fi
rm -rf "$control"
# lintian: no error. Warnings and notes are printed for a person to weigh.
if ! command -v lintian >/dev/null 2>&1; then
  echo "lintian is not installed (Debian: apt-get install lintian)" >&2
  fail=1
else
  lintian_out=$(lintian "$deb" 2>&1 || true)
  [ -z "$lintian_out" ] || echo "$lintian_out"
  if grep -q '^E: ' <<<"$lintian_out"; then
    echo "lintian reports errors for $deb" >&2
    fail=1
  fi
fi
[ "$fail" -eq 0 ] && echo "package $deb: files, control fields, conffiles and lintian as expected"
exit "$fail"
