import { readFileSync } from "node:fs";
import { join } from "node:path";

/** The source tree's copy; the image holds the same file at /app/deploy/node-flags. */
export const NODE_FLAGS_FILE = join(__dirname, "../../deploy/node-flags");

/**
 * The node/V8 flags a service process starts with, from deploy/node-flags: the one definition the
 * image's entrypoint reads too, so the local mesh and benchmarks run services as production does.
 * Place them before the script. `MESHWORK_NODE_FLAGS` in `env`, when set (even empty), replaces
 * the file's flags, as in the image.
 */
export function serviceNodeFlags(env: NodeJS.ProcessEnv = process.env, file = NODE_FLAGS_FILE): string[] {
  const override = env.MESHWORK_NODE_FLAGS;
  if (override !== undefined) return override.split(/\s+/).filter((a) => a !== "");
  const flags: string[] = [];
  for (const [i, raw] of readFileSync(file, "utf8").split("\n").entries()) {
    for (const word of raw.replace(/#.*/, "").split(/\s+/)) {
      if (word === "") continue;
      if (!word.startsWith("-")) throw new Error(`${file}:${i + 1}: expected node flags ("--name[=value]"), got "${word}"`);
      flags.push(word);
    }
  }
  return flags;
}
