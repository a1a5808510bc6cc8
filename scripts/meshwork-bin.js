#!/usr/bin/env node
// The `meshwork` command (package.json "bin"). Runs the TypeScript CLI in this same process through
// tsx's CommonJS hook, so Ctrl-C and SIGTERM reach it directly rather than a wrapper process.
require("tsx/cjs");
require("./meshwork.ts")
  .main(process.argv.slice(2))
  .then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`meshwork: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
