#!/usr/bin/env bash
# From `git clone` to a running node on a fresh Debian, as a new user would:
# README.md "Set-up on a fresh machine" (its apt-get and rustup lines, then
# its two commands, taken from README.md itself) in a fresh debootstrap root
# as a non-root user, the node checked with the client and over HTTP; then
# the Debian package built there (docs/OPERATIONS.md, "Install") and
# installed into a second fresh root that never had the build tools, its
# node started as the unit would start it (no systemd in a chroot).
#
#   deploy/fresh-debian-check.sh [WORKDIR]     # as root; WORKDIR: /srv/catalogue-fresh
#
# Needs debootstrap and unshare, about 4 GB in WORKDIR, and 15-30 minutes
# (two release builds). Not run by CI. It clones the current branch's last
# commit (commit first). Environment:
#   SUITE=bookworm  MIRROR=http://deb.debian.org/debian
#   RUSTUP_INIT_URL=https://static.rust-lang.org/rustup/dist/x86_64-unknown-linux-gnu/rustup-init
#       fetch that installer and run it with -y instead of README's
#       `curl ... https://sh.rustup.rs | sh` (where sh.rustup.rs is unreachable)
#   EXTRA_CA="/path/a.crt ..."   CA certificates to trust in the roots (a
#       TLS-intercepting proxy)
# The roots stay in WORKDIR for a look; every process in them ends with
# the script (each step runs in its own PID and mount namespace).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/srv/catalogue-fresh}
suite=${SUITE:-bookworm}
mirror=${MIRROR:-http://deb.debian.org/debian}
build=$work/build
target=$work/target
user=newcomer

step() { printf '\n=== %s (%s)\n' "$*" "$(date +%T)"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# The commands a reader copies, from the documents themselves.
readme=$repo/README.md
apt_line=$(grep -m1 '^apt-get update && apt-get install' "$readme") || fail "no apt-get line in README.md"
rustup_line=$(grep -m1 '^curl .*sh\.rustup\.rs' "$readme") || fail "no rustup line in README.md"
build_line=$(grep -m1 '^cargo install --locked --path \.$' "$readme") || fail "no cargo install line in README.md"
serve_line=$(grep -m1 '^mkdir .*catalogue serve ' "$readme") || fail "no serve line in README.md"
debtool_line=$(grep -m1 -o 'cargo install cargo-deb --version [0-9.]* --locked' "$repo/docs/OPERATIONS.md") ||
    fail "no cargo-deb line in docs/OPERATIONS.md"
if [ -n "${RUSTUP_INIT_URL:-}" ]; then
    rustup_line="curl --proto '=https' --tlsv1.2 -sSf -o ~/rustup-init '$RUSTUP_INIT_URL' && chmod +x ~/rustup-init && ~/rustup-init -y && . \"\$HOME/.cargo/env\""
fi

# enter ROOT CMD...: CMD chrooted in ROOT, in new PID and mount namespaces
# with /dev, /sys and /proc mounted; all of it ends with CMD.
enter() {
    local root=$1
    shift
    unshare --mount --pid --fork --propagation private --kill-child sh -c '
        r=$1; shift
        mount --rbind /dev "$r/dev" && mount -t sysfs sys "$r/sys" && mount -t proc proc "$r/proc" || exit 99
        exec chroot "$r" "$@"' enter "$root" "$@"
}
as_user() { enter "$build" runuser -l "$user" -c "set -e; $1"; }

for d in "$build" "$target"; do
    [ ! -e "$d" ] || fail "$d exists: remove it or name another WORKDIR"
done
mkdir -p "$work"

step "debootstrap $suite (minbase) into $build; $target is a copy of it as debootstrap left it"
debootstrap --variant=minbase "$suite" "$build" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    fail "debootstrap: see $work/debootstrap.log"
cp -a "$build" "$target"
for d in "$build" "$target"; do
    cp /etc/resolv.conf "$d/etc/resolv.conf"
    if [ -n "${EXTRA_CA:-}" ]; then
        mkdir -p "$d/usr/local/share/ca-certificates"
        # shellcheck disable=SC2086 # a list of paths
        cp $EXTRA_CA "$d/usr/local/share/ca-certificates/"
    fi
done

step "as root: $apt_line"
enter "$build" env DEBIAN_FRONTEND=noninteractive sh -c "$apt_line"
[ -z "${EXTRA_CA:-}" ] || enter "$build" update-ca-certificates >/dev/null
enter "$build" useradd --create-home --shell /bin/bash "$user"
git clone -q --bare --branch "$(git -C "$repo" rev-parse --abbrev-ref HEAD)" "$repo" "$build/srv/catalogue.git"
enter "$build" chown -R "$user:" /srv/catalogue.git

step "as $user: rustup, git clone, $build_line"
as_user "$rustup_line"
as_user "git clone /srv/catalogue.git ~/catalogue"
time as_user "cd ~/catalogue && nice -n 10 $build_line"

step "as $user: $serve_line; then the client and HTTP"
# README's line is `mkdir ... && catalogue serve ...`: the same, with the
# node exec'd from a script so that its pid is known.
prep=${serve_line%% && catalogue serve *}
serve=${serve_line#"$prep && "}
[ "$prep && $serve" = "$serve_line" ] || fail "cannot split: $serve_line"
as_user "cd ~/catalogue && $prep && printf 'exec %s\n' '$serve' >~/serve.sh
    sh ~/serve.sh 2>~/serve.log & node=\$!
    sock=~/.catalogue/catalogue.sock
    for i in \$(seq 300); do [ -S \$sock ] && break; sleep 0.1; done
    [ -S \$sock ] || { cat ~/serve.log; echo 'FAIL: no socket'; exit 1; }
    export CATALOGUE_SOCKET=\$sock
    catalogue peers
    catalogue register tcp://10.0.0.1:5432 --attr role=primary 2>/dev/null & reg=\$!
    for i in \$(seq 100); do catalogue list | grep -q 5432 && break; sleep 0.1; done
    catalogue list | grep 'tcp://10.0.0.1:5432 .*role=primary' || { echo 'FAIL: not listed'; exit 1; }
    curl -fsS http://127.0.0.1:9464/health | grep '\"status\":\"ok\"'
    curl -fsS http://127.0.0.1:7482/v1/services | grep -q 10.0.0.1:5432
    kill -INT \$reg; wait \$reg || true
    kill -INT \$node; wait \$node
    echo 'source install: OK (the node stopped on SIGINT with status 0)'"

step "as $user: $debtool_line; deploy/build-deb.sh"
time as_user "cd ~/catalogue && nice -n 10 $debtool_line && nice -n 10 deploy/build-deb.sh"
debs=("$build"/home/"$user"/catalogue/target/debian/catalogue_*.deb)
[ ${#debs[@]} = 1 ] && [ -f "${debs[0]}" ] || fail "expected one package, found: ${debs[*]}"
cp "${debs[0]}" "$target/root/"
deb=$(basename "${debs[0]}")

step "in $target (no build tools): apt-get install ./$deb"
enter "$target" sh -c "cd /root && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y ./$deb"
enter "$target" bash -c '
    set -e
    catalogue --version
    runuser -u catalogue -- catalogue config check
    test "$(stat -c %U:%G:%a /var/lib/catalogue)" = catalogue:catalogue:700
    test "$(stat -c %U:%G:%a /etc/catalogue)" = root:catalogue:750
    test "$(stat -c %U:%G:%a /etc/catalogue/catalogue.toml)" = root:catalogue:640
    getent passwd catalogue
    for f in /usr/share/man/man1/catalogue.1.gz /usr/share/bash-completion/completions/catalogue \
        /usr/share/zsh/vendor-completions/_catalogue /usr/share/fish/vendor_completions.d/catalogue.fish; do
        test -s "$f" || { echo "FAIL: missing $f"; exit 1; }
    done
    zcat /usr/share/man/man1/catalogue.1.gz | grep -q "^\.TH"
    # Start the node as catalogue.service would: its user, Environment= and ExecStart=.
    unit=/usr/lib/systemd/system/catalogue.service
    env=$(sed -n "s/^Environment=//p" $unit)
    exec_start=$(sed -n "s/^ExecStart=//p" $unit)
    install -d -o catalogue -g catalogue -m 0755 /run/catalogue
    # setpriv execs the node itself (runuser would stay as its parent and
    # exit 143 on SIGTERM, whatever the node did).
    (umask 0077; exec setpriv --reuid=catalogue --regid=catalogue --init-groups \
        env $env $exec_start) 2>/root/serve.log & node=$!
    for i in $(seq 300); do [ -S /run/catalogue/catalogue.sock ] && break; sleep 0.1; done
    [ -S /run/catalogue/catalogue.sock ] || { cat /root/serve.log; echo "FAIL: no socket"; exit 1; }
    catalogue peers
    catalogue list
    exec 3<>/dev/tcp/127.0.0.1/9464
    printf "GET /health HTTP/1.0\r\n\r\n" >&3
    grep "\"status\":\"ok\"" <&3
    kill -TERM $node; wait $node
    echo "package install: OK (the node stopped on SIGTERM with status 0)"'

step "all checks passed"
