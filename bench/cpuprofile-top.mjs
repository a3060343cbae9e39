#!/usr/bin/env node
// The top entries of V8 CPU profiles (node --cpu-prof) by self time:
//
//   node bench/cpuprofile-top.mjs [-n N] [--by function|file] FILE.cpuprofile ...
//
// Several profiles are summed. A function is named with its file's last two path
// parts and its line; "(garbage collector)", "(program)" and "(idle)" are V8's own.
// Percentages are of the non-idle samples.
import fs from 'node:fs';

const args = process.argv.slice(2);
let top = 30;
let by = 'function';
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '-n') top = Number(args[++i]);
  else if (args[i] === '--by') by = args[++i];
  else files.push(args[i]);
}
if (files.length === 0) {
  console.error('usage: cpuprofile-top.mjs [-n N] [--by function|file] FILE.cpuprofile ...');
  process.exit(2);
}

const self = new Map();
let total = 0;
let idle = 0;
for (const f of files) {
  const p = JSON.parse(fs.readFileSync(f, 'utf8'));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const counts = new Map();
  for (const s of p.samples) counts.set(s, (counts.get(s) ?? 0) + 1);
  for (const [id, n] of counts) {
    const cf = byId.get(id).callFrame;
    const file = cf.url ? cf.url.replace(/^file:\/\//, '').split('/').slice(-2).join('/') : '';
    const name = cf.functionName || '(anonymous)';
    if (name === '(idle)') {
      idle += n;
      continue;
    }
    total += n;
    const key = by === 'file' ? file || name : `${name} ${file}${file ? `:${cf.lineNumber + 1}` : ''}`;
    self.set(key, (self.get(key) ?? 0) + n);
  }
}
const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, top);
console.log(`${total} samples (${idle} idle not counted), ${files.length} profile(s)`);
for (const [k, n] of rows) console.log(`${((100 * n) / total).toFixed(1).padStart(5)}%  ${k}`);
