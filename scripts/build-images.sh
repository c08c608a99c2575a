#!/usr/bin/env bash
# Builds FedState's container images without a container runtime (daemonless), with crane from
# the pinned Go modules (deploy/local/build.sh), into OCI image tarballs:
#
#   scripts/build-images.sh                          # release build, tarballs in target/images/
#   scripts/build-images.sh --bin-dir DIR --out DIR  # images of already built binaries
#   scripts/build-images.sh --push                   # also push to $REGISTRY (deploy/images/images.env)
#
# Each image: a minimal base layer (the shared libraries the binary links, from this machine's
# Debian: glibc and libgcc; CA certificates; /etc/passwd with the distroless `nonroot` user
# 65532) and the binary as /usr/local/bin/<name>; ENTRYPOINT the binary, USER 65532:65532, OCI
# labels. deploy/images/Dockerfile builds the same images with a container runtime (distroless
# base). Names and tags: deploy/images/images.env.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../deploy/images/images.env
source "$repo/deploy/images/images.env"
bin_dir="" out="$repo/target/images" push=0
while (($#)); do
    case "$1" in
    --bin-dir) bin_dir="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --push) push=1; shift ;;
    -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-images.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
say() { printf '[build-images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ -z "$bin_dir" ]]; then
    say "cargo build --release of $IMAGES (several minutes on 2 cores)"
    (cd "$repo" && cargo build --locked --release $(printf -- '-p %s ' $IMAGES))
    target_dir="$(cd "$repo" && cargo metadata --locked --format-version 1 --no-deps |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
    bin_dir="$target_dir/release"
fi
crane="$("$repo/deploy/local/build.sh" | tail -n 1)/crane"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n 1)"
source_url="$(sed -n 's/^repository = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n 1)"
license="$(sed -n 's/^license = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n 1)"
mkdir -p "$out"
work="$(mktemp -d)"
registry_pid=""
cleanup() {
    [[ -n "$registry_pid" ]] && kill "$registry_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# A registry in memory on loopback for crane to assemble the images in.
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$crane" registry serve --address "127.0.0.1:$port" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
local_registry="127.0.0.1:$port"

for name in $IMAGES; do
    binary="$bin_dir/$name"
    [[ -x "$binary" ]] || { say "no binary $binary"; exit 1; }
    root="$work/$name/base"
    mkdir -p "$root/etc/ssl/certs" "$root/usr/local/bin" "$root/tmp"
    chmod 1777 "$root/tmp"
    # The shared libraries the binary needs, at the paths the dynamic loader looks them up.
    ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\/.*ld-linux/ {print $1}' | sort -u | while read -r lib; do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
    cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
    tar --owner=0 --group=0 --numeric-owner --sort=name --mtime=@0 -C "$root" -cf "$work/$name/base.tar" .
    app="$work/$name/app"
    mkdir -p "$app/usr/local/bin"
    cp "$binary" "$app/usr/local/bin/$name"
    tar --owner=0 --group=0 --numeric-owner --sort=name --mtime=@0 -C "$app" -cf "$work/$name/app.tar" .

    ref="$local_registry/$name:$TAG"
    "$crane" append --oci-empty-base -f "$work/$name/base.tar" -f "$work/$name/app.tar" -t "$ref" >/dev/null 2>>"$work/crane.log"
    "$crane" mutate "$ref" --entrypoint "/usr/local/bin/$name" --user 65532:65532 --workdir / \
        --env PATH=/usr/local/bin:/usr/bin:/bin --env MALLOC_ARENA_MAX=2 \
        -l "org.opencontainers.image.title=$name" -l "org.opencontainers.image.version=$version" \
        -l "org.opencontainers.image.source=$source_url" -l "org.opencontainers.image.licenses=$license" \
        --set-platform linux/amd64 -t "$ref" >/dev/null 2>>"$work/crane.log"
    "$crane" pull --format=tarball "$ref" "$out/$name.tar" 2>>"$work/crane.log"
    "$crane" config "$ref" >"$out/$name.config.json"
    say "$REGISTRY/$name:$TAG -> $out/$name.tar ($(du -h "$out/$name.tar" | cut -f1))"
    if ((push)); then
        "$crane" copy "$ref" "$REGISTRY/$name:$TAG"
        say "pushed $REGISTRY/$name:$TAG"
    fi
done
