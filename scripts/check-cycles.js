#!/usr/bin/env node
// Fails when modules under src/ import each other in a circle, or folders do (a folder is a room:
// its files may import each other, but two rooms never lean on each other both ways). Type-only
// imports count: a circle of types is still two pieces that cannot be understood apart.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = resolve("src");
const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^"';]*?from\s+["'](\.{1,2}\/[^"']+)["']/g;
const DYNAMIC = /import\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g;

function sources(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts") ? [path] : [];
  });
}

const files = sources(ROOT);
const graph = new Map(
  files.map((file) => {
    const text = readFileSync(file, "utf8");
    const targets = [...text.matchAll(IMPORT), ...text.matchAll(DYNAMIC)].map((match) =>
      resolve(dirname(file), match[1].replace(/\.js$/, ".ts")),
    );
    return [file, [...new Set(targets)].filter((target) => target !== file)];
  }),
);

/** Tarjan's strongly connected components: every one of more than one node is a circle. */
function circlesOf(graph) {
  let index = 0;
  const stack = [];
  const state = new Map();
  const circles = [];
  const visit = (node) => {
    const entry = { index, low: index, onStack: true };
    index++;
    state.set(node, entry);
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (!graph.has(next)) continue;
      const seen = state.get(next);
      if (!seen) {
        visit(next);
        entry.low = Math.min(entry.low, state.get(next).low);
      } else if (seen.onStack) {
        entry.low = Math.min(entry.low, seen.index);
      }
    }
    if (entry.low !== entry.index) return;
    const component = [];
    let member;
    do {
      member = stack.pop();
      state.get(member).onStack = false;
      component.push(member);
    } while (member !== node);
    if (component.length > 1) circles.push(component);
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  return circles;
}

const folders = new Map();
for (const [file, targets] of graph) {
  const edges = folders.get(dirname(file)) ?? new Set();
  for (const target of targets) if (dirname(target) !== dirname(file)) edges.add(dirname(target));
  folders.set(dirname(file), edges);
}
const circles = [
  ...circlesOf(graph).map((circle) => ["module", circle]),
  ...circlesOf(new Map([...folders].map(([dir, edges]) => [dir, [...edges]]))).map((circle) => [
    "folder",
    circle,
  ]),
];

if (circles.length > 0) {
  for (const [kind, circle] of circles) {
    const names = circle.map((path) => relative(ROOT, path) || ".").sort();
    console.error(`${kind} import circle: ${names.join(" ↔ ")}`);
  }
  process.exit(1);
}
console.log(
  `check-cycles: ${files.length} modules in ${folders.size} folders under src/, no circle`,
);
