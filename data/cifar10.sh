#!/usr/bin/env bash
# Puts CIFAR-10 (binary version) into data/cifar-10-batches-bin/:
#   data_batch_1.bin .. data_batch_5.bin  (train, 10000 records each)
#   test_batch.bin                        (test, 10000 records)
#   batches.meta.txt                      (the 10 class names)
# Each record is 1 label byte + 3072 pixel bytes, so each .bin is 30730000 bytes.
#
# Usage:
#   data/cifar10.sh                 download the official archive, check its md5, unpack
#   data/cifar10.sh ARCHIVE.tar.gz  the same from an archive you downloaded yourself
#   data/cifar10.sh DIR [--copy]    take the .bin files from a local cifar-10-batches-bin
#                                   folder: symbolic links by default, copies with --copy
#
# Environment: CIFAR10_URL overrides the download address (a mirror; the md5 is still
# checked).  Nothing is put in place unless it is complete and checked: the archive goes
# to a temporary file, is unpacked into a temporary folder, and only then moved in.
set -euo pipefail

URL="${CIFAR10_URL:-https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz}"
OFFICIAL_URL="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
MD5="c32a1d4ab5d03f1284b67883e8d87530"   # from the CIFAR page; torchvision's tgz_md5
BIN_BYTES=30730000                        # 10000 * (1 + 3072)
TRAIN="data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin"
CLASSES=(airplane automobile bird cat deer dog frog horse ship truck)

DATA="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEST="$DATA/cifar-10-batches-bin"
ME="data/cifar10.sh"
TMPDIR_OURS=""
TMPFILE_OURS=""
OLD_OURS=""

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    [ -n "$TMPFILE_OURS" ] && rm -f "$TMPFILE_OURS"
    [ -n "$TMPDIR_OURS" ] && rm -rf "$TMPDIR_OURS"
    [ -n "$OLD_OURS" ] && rm -rf "$OLD_OURS"
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# One line saying what failed and what to do instead, then exit 1.
fail() {
    echo "$ME: FAILED: $1. Get it by hand: download $OFFICIAL_URL (md5 $MD5) on a machine with internet, then run '$ME /path/to/cifar-10-binary.tar.gz' (or '$ME /path/to/cifar-10-batches-bin'); until then 'make train' falls back to the synthetic set." >&2
    exit 1
}

usage() {
    sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

size_of() { wc -c <"$1" | tr -d ' '; }   # follows symbolic links; portable

# True when $1 is a regular file (or a link to one) of exactly BIN_BYTES bytes.
good_bin() { [ -f "$1" ] && [ "$(size_of "$1")" = "$BIN_BYTES" ]; }

# Which of the expected files in folder $1 are good; prints "train", "all" or "none".
state_of() {
    local f
    for f in $TRAIN; do good_bin "$1/$f" || { echo none; return; }; done
    if good_bin "$1/test_batch.bin"; then echo all; else echo train; fi
}

md5_of() {
    if command -v md5sum >/dev/null 2>&1; then md5sum "$1" | cut -d' ' -f1
    elif command -v md5 >/dev/null 2>&1; then md5 -q "$1"
    elif command -v openssl >/dev/null 2>&1; then openssl dgst -md5 "$1" | sed 's/.*= *//'
    else return 1
    fi
}

write_meta() { printf '%s\n' "${CLASSES[@]}" >"$1/batches.meta.txt"; }

# Move the finished folder $1 into place, replacing any previous DEST whole.
install_dir() {
    if [ -e "$DEST" ] || [ -L "$DEST" ]; then
        OLD_OURS="$DATA/.cifar-10-batches-bin.old.$$.tmp"
        mv "$DEST" "$OLD_OURS"
    fi
    mv "$1" "$DEST"
    TMPDIR_OURS=""
}

held_out_note() {
    echo "$ME: note: the test split (test_batch.bin) is missing; data_batch_5.bin serves as the held-out split (train on batches 1-4)."
}

# ---- from a local folder of .bin files -----------------------------------------------
from_dir() {
    local src copy="$1" f st
    src="$(cd "$2" && pwd)" || fail "cannot enter $2"
    st="$(state_of "$src")"
    if [ "$st" = none ]; then
        for f in $TRAIN; do
            [ -f "$src/$f" ] || fail "$src has no $f"
            good_bin "$src/$f" || fail "$src/$f is $(size_of "$src/$f") bytes, expected $BIN_BYTES"
        done
    fi
    if [ "$src" = "$DEST" ]; then
        echo "$ME: $DEST is the source itself; nothing to do."
        [ "$st" = all ] || held_out_note
        exit 0
    fi
    TMPDIR_OURS="$DATA/.cifar10.$$.tmp"
    mkdir "$TMPDIR_OURS"
    local files="$TRAIN"
    [ "$st" = all ] && files="$files test_batch.bin"
    for f in $files; do
        if [ "$copy" = 1 ]; then cp "$src/$f" "$TMPDIR_OURS/$f" || fail "copying $src/$f"
        else ln -s "$src/$f" "$TMPDIR_OURS/$f" || fail "linking $src/$f"
        fi
    done
    if [ -f "$src/batches.meta.txt" ]; then cp "$src/batches.meta.txt" "$TMPDIR_OURS/"
    else write_meta "$TMPDIR_OURS"
    fi
    [ "$(state_of "$TMPDIR_OURS")" = "$st" ] || fail "the files in $TMPDIR_OURS do not check out after linking/copying"
    install_dir "$TMPDIR_OURS"
    if [ "$copy" = 1 ]; then echo "$ME: copied $files from $src into $DEST"
    else echo "$ME: linked $files from $src into $DEST (pass --copy to copy instead)"
    fi
    [ "$st" = all ] || held_out_note
    exit 0
}

# ---- from the archive (downloaded or given) ------------------------------------------
download() {
    local out="$1"
    if command -v curl >/dev/null 2>&1 || command -v wget >/dev/null 2>&1; then
        echo "$ME: downloading $URL (162 MB)"
    fi
    if command -v curl >/dev/null 2>&1; then
        curl -fL --connect-timeout 10 --speed-limit 1024 --speed-time 60 --max-time 3600 \
             --progress-bar -o "$out" "$URL" || fail "curl could not download $URL (exit $?)"
    elif command -v wget >/dev/null 2>&1; then
        wget -q --connect-timeout=10 --dns-timeout=10 --read-timeout=60 --tries=2 \
             -O "$out" "$URL" || fail "wget could not download $URL (exit $?)"
    else
        fail "neither curl nor wget is installed, so nothing can be downloaded"
    fi
}

from_archive() {
    local archive="$1" sum got
    sum="$(md5_of "$archive")" || fail "no md5 tool (md5sum, md5 or openssl) to check $archive"
    [ "$sum" = "$MD5" ] || fail "$archive has md5 $sum, expected $MD5 (incomplete or not the official cifar-10-binary.tar.gz)"
    echo "$ME: md5 ok ($MD5); unpacking"
    TMPDIR_OURS="$DATA/.cifar10.$$.tmp"
    mkdir "$TMPDIR_OURS"
    tar -xzf "$archive" -C "$TMPDIR_OURS" || fail "tar could not unpack $archive"
    got="$TMPDIR_OURS/cifar-10-batches-bin"
    [ "$(state_of "$got")" = all ] || fail "the archive unpacked without the six 30730000-byte .bin files"
    [ -f "$got/batches.meta.txt" ] || write_meta "$got"
    # Move the inner folder up so that the temporary folder itself becomes DEST.
    mv "$got" "$DATA/.cifar10.$$.ready.tmp"
    rm -rf "$TMPDIR_OURS"
    TMPDIR_OURS="$DATA/.cifar10.$$.ready.tmp"
    install_dir "$TMPDIR_OURS"
    echo "$ME: CIFAR-10 is in $DEST (train: data_batch_1..5.bin, test: test_batch.bin)"
    exit 0
}

# ---- main --------------------------------------------------------------------------
COPY=0
SRC=""
for a in "$@"; do
    case "$a" in
        -h|--help) usage; exit 0 ;;
        --copy) COPY=1 ;;
        -*) echo "$ME: unknown option $a (see $ME --help)" >&2; exit 2 ;;
        *) [ -z "$SRC" ] || { echo "$ME: one source at most (see $ME --help)" >&2; exit 2; }
           SRC="$a" ;;
    esac
done

if [ -n "$SRC" ]; then
    if [ -d "$SRC" ]; then from_dir "$COPY" "$SRC"
    elif [ -f "$SRC" ]; then from_archive "$SRC"
    else fail "$SRC is neither a folder nor a file"
    fi
fi

case "$(state_of "$DEST")" in
    all)   echo "$ME: CIFAR-10 is already in $DEST (six .bin files of $BIN_BYTES bytes); nothing to do."
           exit 0 ;;
    train) echo "$ME: $DEST has the training batches but no test_batch.bin; downloading the full set."
           echo "$ME: (if that fails, $DEST stays as it is and data_batch_5.bin serves as the held-out split)" ;;
    none)  ;;
esac

TMPFILE_OURS="$DATA/.cifar-10-binary.tar.gz.$$.tmp"
download "$TMPFILE_OURS"
from_archive "$TMPFILE_OURS"
