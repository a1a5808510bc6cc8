import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(__dirname, "../..");
const buf = join(root, "node_modules/.bin/buf");
const releaseCommit = /^commit=(\w+)$/m.exec(readFileSync(join(root, ".contracts-release"), "utf8"))![1];

/** Copies proto/ into a temporary module, lets `edit` change it, and runs the breaking check against the release. */
function breakingAgainstRelease(edit: (dir: string) => void): { status: number | null; output: string } {
  const dir = mkdtempSync(join(tmpdir(), "meshwork-breaking-"));
  try {
    cpSync(join(root, "proto"), dir, { recursive: true });
    writeFileSync(join(dir, "buf.yaml"), "version: v2\nbreaking:\n  use: [FILE]\n");
    edit(dir);
    const r = spawnSync(buf, ["breaking", dir, "--against", `.git#ref=${releaseCommit},subdir=proto`], { cwd: root, encoding: "utf8" });
    return { status: r.status, output: r.stdout + r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("breaking-change gate", () => {
  it("records a release commit that exists in this clone", () => {
    expect(execFileSync("git", ["cat-file", "-t", releaseCommit], { cwd: root, encoding: "utf8" }).trim()).toBe("commit");
  });

  it("accepts the contracts unchanged", () => {
    const r = breakingAgainstRelease(() => undefined);
    expect(r.output).toBe("");
    expect(r.status).toBe(0);
  });

  it("fails a deliberately broken contract change (a field renumbered)", () => {
    const r = breakingAgainstRelease((dir) => {
      const file = join(dir, "catalog/v1/catalog.proto");
      const text = readFileSync(file, "utf8");
      const changed = text.replace(/string sku = 2;/, "string sku = 20;");
      expect(changed).not.toBe(text);
      writeFileSync(file, changed);
    });
    expect(r.status).not.toBe(0);
    expect(r.output).toMatch(/catalog\/v1\/catalog\.proto/);
  });

  it("fails when an rpc is removed", () => {
    const r = breakingAgainstRelease((dir) => {
      const file = join(dir, "orders/v1/orders.proto");
      const text = readFileSync(file, "utf8");
      // Drop the rpc's lines from its declaration to its closing brace at two spaces of indent.
      const changed = text.replace(/  rpc CancelOrder\([\s\S]*?\n  \}\n/, "");
      expect(changed).not.toBe(text);
      writeFileSync(file, changed);
    });
    expect(r.status).not.toBe(0);
    expect(r.output).toMatch(/CancelOrder/);
  });
});
