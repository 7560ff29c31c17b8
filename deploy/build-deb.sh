#!/usr/bin/env bash
# Builds the Debian package target/debian/catalogue_<version>-1_<arch>.deb
# with cargo-deb ([package.metadata.deb] in the root Cargo.toml):
#
#   deploy/build-deb.sh          # release build: the package to ship
#   deploy/build-deb.sh dev      # reuse the debug build (what .ci/run checks)
#
# cargo-deb packs files; this script first makes the ones generated from
# the binary under target/deb-assets/: shell completions and catalogue(1)
# from the clap definitions, and the systemd units with ExecStart at
# /usr/bin/catalogue (deploy/ has them at /usr/local/bin for source
# installs). Needs cargo-deb: `cargo install cargo-deb --version 3.8.0 --locked`.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${1:-release}
case "$profile" in
    dev) dir=debug ;;
    *) dir=$profile ;;
esac
cargo build --locked --profile "$profile" -p catalogue --bin catalogue
bin=target/$dir/catalogue

assets=target/deb-assets
rm -rf "$assets"
mkdir -p "$assets"
"$bin" completions bash >"$assets/catalogue.bash"
"$bin" completions zsh >"$assets/_catalogue"
"$bin" completions fish >"$assets/catalogue.fish"
"$bin" manpage | gzip -9n >"$assets/catalogue.1.gz"
for unit in catalogue.service catalogue-register@.service; do
    sed 's#/usr/local/bin/catalogue#/usr/bin/catalogue#g' "deploy/$unit" >"$assets/$unit"
done

cargo deb --locked --no-build --strip --profile "$profile" -p catalogue
