import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serviceNodeFlags } from "./node-flags.js";

describe("serviceNodeFlags (deploy/node-flags)", () => {
  let dir: string;
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), "meshwork-node-flags-"))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  test("the repository's file holds node flags, and node accepts them", () => {
    const flags = serviceNodeFlags({});
    expect(flags.length).toBeGreaterThan(0);
    for (const a of flags) expect(a).toMatch(/^--[a-z0-9-]+(=\S+)?$/);
    // node refuses an unknown flag at start-up (exit 9), so a typo here would stop every service.
    expect(spawnSync(process.execPath, [...flags, "-e", "0"]).status).toBe(0);
  });

  test("comments, blank lines and several flags on a line", () => {
    const f = file("mixed", "# comment\n\n--max-semi-space-size=1   # why\n--stack-size=900 --no-warnings\n");
    expect(serviceNodeFlags({}, f)).toEqual(["--max-semi-space-size=1", "--stack-size=900", "--no-warnings"]);
  });

  test("MESHWORK_NODE_FLAGS replaces the flags, even when empty", () => {
    const f = file("one", "--max-semi-space-size=1\n");
    expect(serviceNodeFlags({ MESHWORK_NODE_FLAGS: " --a  --b=2 " }, f)).toEqual(["--a", "--b=2"]);
    expect(serviceNodeFlags({ MESHWORK_NODE_FLAGS: "" }, f)).toEqual([]);
  });

  test("a word that is not a flag is refused with its line number", () => {
    expect(() => serviceNodeFlags({}, file("bad", "--ok\nMALLOC_ARENA_MAX=2\n"))).toThrow(/bad:2/);
  });
});
