#!/usr/bin/env bash
# Puts Fashion-MNIST into data/fashion-mnist/ as the four uncompressed IDX files:
#   train-images-idx3-ubyte  train-labels-idx1-ubyte   (train, 60000 images 28x28)
#   t10k-images-idx3-ubyte   t10k-labels-idx1-ubyte    (test, 10000 images 28x28)
#
# Usage: data/fashion_mnist.sh [--no-install] [DIR]
#   DIR           take the four files (plain or .gz) from a folder of yours
#   otherwise, the first of these that works:
#   1. /usr/share/datasets/fashion-mnist, from Debian's package dataset-fashion-mnist
#   2. as root with apt-get: apt-get install -y dataset-fashion-mnist, then as 1
#      (--no-install skips this; not root: the command is printed instead)
#   3. download the four .gz files from Zalando's official address, md5-checked
#
# Environment: FASHION_MNIST_URL overrides the download base address (a mirror; the
# md5s are still checked).  Every file is checked (IDX magic, counts, 28x28, size and the
# md5 of its uncompressed bytes) in a temporary folder before anything is moved in.
set -euo pipefail

BASE_URL="${FASHION_MNIST_URL:-http://fashion-mnist.s3-website.eu-central-1.amazonaws.com}"
OFFICIAL_URL="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com"
DEB_DIR="/usr/share/datasets/fashion-mnist"
DEB_PKG="dataset-fashion-mnist"

# name, IDX magic, count, uncompressed bytes, md5 uncompressed, md5 of the official .gz
# (the .gz md5s are torchvision's; Debian recompresses the files, so for its copy only
# the md5 of the uncompressed bytes applies)
SPEC="
train-images-idx3-ubyte 2051 60000 47040016 f4a8712d7a061bf5bd6d2ca38dc4d50a 8d4fb7e6c68d591d4c3dfef9ec88bf0d
train-labels-idx1-ubyte 2049 60000 60008    9018921c3c673c538a1fc5bad174d6f9 25c81989df183df01b3e8a0aad5dffbe
t10k-images-idx3-ubyte  2051 10000 7840016  8181f5470baa50b63fa0f6fddb340f0a bef4ecab320f06d8554ea6380940ec79
t10k-labels-idx1-ubyte  2049 10000 10008    15d484375f8d13e6eb1aabb0c3f46965 bb300cfdad3c16e7a12a480ee83cd310
"
NAMES="train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte"

DATA="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEST="$DATA/fashion-mnist"
ME="data/fashion_mnist.sh"
TMPDIR_OURS=""
OLD_OURS=""

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    [ -n "$TMPDIR_OURS" ] && rm -rf "$TMPDIR_OURS"
    [ -n "$OLD_OURS" ] && rm -rf "$OLD_OURS"
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
    echo "$ME: FAILED: $1. Get it by hand: 'apt-get install $DEB_PKG' (Debian/Ubuntu), or download the four *-ubyte.gz files from $OFFICIAL_URL/ on a machine with internet, then run '$ME /path/to/that/folder'; until then 'make train' falls back to the synthetic set." >&2
    exit 1
}

usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

spec_of() { echo "$SPEC" | awk -v n="$1" '$1 == n'; }   # the SPEC line of file $1
size_of() { wc -c <"$1" | tr -d ' '; }

md5_of() {
    if command -v md5sum >/dev/null 2>&1; then md5sum "$1" | cut -d' ' -f1
    elif command -v md5 >/dev/null 2>&1; then md5 -q "$1"
    elif command -v openssl >/dev/null 2>&1; then openssl dgst -md5 "$1" | sed 's/.*= *//'
    else echo "no-md5-tool"
    fi
}

# Big-endian uint32 at byte offset $2 of file $1.
be32() {
    od -An -tu1 -j "$2" -N4 "$1" | awk '{ print (($1 * 256 + $2) * 256 + $3) * 256 + $4 }'
}

# Checks the uncompressed IDX file $1 (named as in SPEC); prints what is wrong, or nothing.
check_idx() {
    local f="$1" name magic count bytes md5 _gz got
    name="$(basename "$f")"
    read -r _ magic count bytes md5 _gz <<<"$(spec_of "$name")"
    [ -f "$f" ] || { echo "$name is missing"; return; }
    got="$(size_of "$f")"
    [ "$got" = "$bytes" ] || { echo "$name is $got bytes, expected $bytes"; return; }
    got="$(be32 "$f" 0)"
    [ "$got" = "$magic" ] || { echo "$name has IDX magic $got, expected $magic"; return; }
    got="$(be32 "$f" 4)"
    [ "$got" = "$count" ] || { echo "$name holds $got items, expected $count"; return; }
    if [ "$magic" = 2051 ]; then
        got="$(be32 "$f" 8)x$(be32 "$f" 12)"
        [ "$got" = 28x28 ] || { echo "$name has ${got} images, expected 28x28"; return; }
    fi
    got="$(md5_of "$f")"
    [ "$got" = "$md5" ] || echo "$name has md5 $got, expected $md5 (corrupt, or not Fashion-MNIST: plain MNIST has the same layout)"
}

# Checks the four files in folder $1; prints the first problem, or nothing.
check_dir() {
    local n why
    for n in $NAMES; do
        why="$(check_idx "$1/$n")"
        [ -z "$why" ] || { echo "$why"; return; }
    done
}

new_tmp() {
    TMPDIR_OURS="$DATA/.fashion-mnist.$$.tmp"
    rm -rf "$TMPDIR_OURS"
    mkdir "$TMPDIR_OURS"
}

# Checks the temporary folder and moves it into place; $1 says where the files came from.
finish() {
    local why
    why="$(check_dir "$TMPDIR_OURS")"
    [ -z "$why" ] || fail "$why (from $1)"
    if [ -e "$DEST" ] || [ -L "$DEST" ]; then
        OLD_OURS="$DATA/.fashion-mnist.old.$$.tmp"
        mv "$DEST" "$OLD_OURS"
    fi
    mv "$TMPDIR_OURS" "$DEST"
    TMPDIR_OURS=""
    echo "$ME: Fashion-MNIST is in $DEST (from $1): train 60000 and test 10000 images, 28x28, checked"
    exit 0
}

# Fills the temporary folder from folder $1 holding each file plain or as .gz.
from_dir() {
    local src="$1" n
    new_tmp
    for n in $NAMES; do
        if [ -f "$src/$n" ]; then
            cp "$src/$n" "$TMPDIR_OURS/$n" || fail "copying $src/$n"
        elif [ -f "$src/$n.gz" ]; then
            gzip -dc "$src/$n.gz" >"$TMPDIR_OURS/$n" || fail "gunzip $src/$n.gz"
        else
            fail "$src has neither $n nor $n.gz"
        fi
    done
    finish "$src"
}

download() {
    local n gz got _m _c _b _u want
    if command -v curl >/dev/null 2>&1; then DL=curl
    elif command -v wget >/dev/null 2>&1; then DL=wget
    else fail "$DEB_DIR is absent and neither curl nor wget is installed to download the files"
    fi
    echo "$ME: downloading the four files (30 MB) from $BASE_URL/"
    new_tmp
    for n in $NAMES; do
        gz="$TMPDIR_OURS/$n.gz"
        if [ "$DL" = curl ]; then
            curl -fsSL --connect-timeout 10 --speed-limit 1024 --speed-time 60 --max-time 1800 \
                 -o "$gz" "$BASE_URL/$n.gz" || fail "curl could not download $BASE_URL/$n.gz (exit $?)"
        else
            wget -q --connect-timeout=10 --dns-timeout=10 --read-timeout=60 --tries=2 \
                 -O "$gz" "$BASE_URL/$n.gz" || fail "wget could not download $BASE_URL/$n.gz (exit $?)"
        fi
        read -r _ _m _c _b _u want <<<"$(spec_of "$n")"
        got="$(md5_of "$gz")"
        [ "$got" = "$want" ] || fail "$n.gz has md5 $got, expected $want (incomplete or not the official file)"
        gzip -d "$gz" || fail "gunzip $n.gz"
    done
    finish "$BASE_URL/"
}

# ---- main --------------------------------------------------------------------------
INSTALL=1
SRC=""
for a in "$@"; do
    case "$a" in
        -h|--help) usage; exit 0 ;;
        --no-install) INSTALL=0 ;;
        -*) echo "$ME: unknown option $a (see $ME --help)" >&2; exit 2 ;;
        *) [ -z "$SRC" ] || { echo "$ME: one folder at most (see $ME --help)" >&2; exit 2; }
           SRC="$a" ;;
    esac
done

if [ -n "$SRC" ]; then
    [ -d "$SRC" ] || fail "$SRC is not a folder"
    from_dir "$(cd "$SRC" && pwd)"
fi

if [ -d "$DEST" ]; then
    why="$(check_dir "$DEST")"
    if [ -z "$why" ]; then
        echo "$ME: Fashion-MNIST is already in $DEST (four IDX files, checked); nothing to do."
        exit 0
    fi
    echo "$ME: $DEST fails its check ($why); getting it again."
fi

[ -d "$DEB_DIR" ] && from_dir "$DEB_DIR"

if [ "$INSTALL" = 1 ] && command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        echo "$ME: installing Debian's $DEB_PKG (30 MB) with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        if apt-get install -y -q "$DEB_PKG" || { apt-get update -q && apt-get install -y -q "$DEB_PKG"; }; then
            [ -d "$DEB_DIR" ] && from_dir "$DEB_DIR"
            echo "$ME: $DEB_PKG installed but $DEB_DIR is absent; trying the download"
        else
            echo "$ME: apt-get could not install $DEB_PKG; trying the download"
        fi
    else
        echo "$ME: tip: 'sudo apt-get install $DEB_PKG' provides the files offline; trying the download"
    fi
fi

download
