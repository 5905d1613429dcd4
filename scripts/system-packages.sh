#!/bin/sh
# Debian packages Latent Lab uses: python3-venv (to make .venv), dataset-fashion-mnist (the data,
# offline) and chromium (the browser test). Installed only when missing, and only where apt-get
# can run as root; otherwise this says what to install and carries on.
set -u
missing=""
python3 -c 'import ensurepip, venv' 2>/dev/null || missing="$missing python3-venv"
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || missing="$missing dataset-fashion-mnist"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
[ -z "$missing" ] && exit 0

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "== installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null && exit 0
    echo "error: apt-get could not install:$missing" >&2
    exit 1
fi
echo "note: not installing$missing (needs apt-get as root): run 'sudo apt-get install$missing'."
echo "      Without them: Fashion-MNIST falls back to torchvision's download, and the browser test is skipped."
exit 0
