import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";

const root = resolve(__dirname, "../..");

function tsFiles(dir: string): string[] {
  let out: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out = out.concat(tsFiles(p));
    else if (p.endsWith(".ts")) out.push(p);
  }
  return out;
}

/** Every relative or absolute-path import of a file, resolved to a repository path. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const specs = [...text.matchAll(/(?:from\s+|import\s*\(\s*|require\(\s*)["']([^"']+)["']/g)].map((m) => m[1]);
  return specs.filter((s) => s.startsWith(".")).map((s) => relative(root, resolve(dirname(file), s)));
}

/** Which top-level room a repository path belongs to: "services/<name>", "gen", "mesh", "gateway", ... */
function roomOf(path: string): string {
  const parts = path.split(sep);
  return parts[0] === "services" ? `services/${parts[1]}` : parts[0];
}

describe("architecture: services talk only through their contracts", () => {
  const services = readdirSync(join(root, "services")).filter((n) => statSync(join(root, "services", n)).isDirectory());

  it("finds the shop's services", () => {
    expect(services.length).toBeGreaterThanOrEqual(1);
  });

  it.each(services)("services/%s imports only gen/, mesh/ and its own folder", (name) => {
    const own = `services/${name}`;
    const offending: string[] = [];
    for (const file of tsFiles(join(root, own))) {
      for (const target of importsOf(file)) {
        const room = roomOf(target);
        if (room !== own && room !== "gen" && room !== "mesh") offending.push(`${relative(root, file)} → ${target}`);
      }
    }
    expect(offending).toEqual([]);
  });

  it("mesh/ and gateway/ never import a service", () => {
    const offending: string[] = [];
    for (const top of ["mesh", "gateway"]) {
      for (const file of tsFiles(join(root, top))) {
        for (const target of importsOf(file)) if (roomOf(target).startsWith("services/")) offending.push(`${relative(root, file)} → ${target}`);
      }
    }
    expect(offending).toEqual([]);
  });

  it("detects a cross-service import (the rule itself works)", () => {
    expect(roomOf(relative(root, resolve(root, "services/orders/x.ts", "../../catalog/domain/y.js")))).toBe("services/catalog");
  });
});
