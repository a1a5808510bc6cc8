/** @jest-config-loader-options {"transpileOnly": true, "compilerOptions": {"module": "commonjs", "moduleResolution": "node10"}} */
import type { Config } from "jest";

const config: Config = {
  testEnvironment: "node",
  roots: ["<rootDir>/mesh", "<rootDir>/services", "<rootDir>/gateway", "<rootDir>/console", "<rootDir>/deploy", "<rootDir>/scripts", "<rootDir>/gen", "<rootDir>/tests"],
  testMatch: ["**/*.test.ts"],
  // Generated code imports "./x_pb.js"; map it back to the .ts source.
  moduleNameMapper: { "^(\\.{1,2}/.*)\\.js$": "$1" },
  transform: {
    "^.+\\.ts$": ["ts-jest", { tsconfig: { isolatedModules: true, module: "commonjs", moduleResolution: "node10", target: "ES2022", esModuleInterop: true, sourceMap: true } }],
  },
  // Integration tests start real etcd/NATS processes; a generous default keeps slow CI machines green.
  testTimeout: 60_000,
  // Two cores: more workers than that only adds contention between process-spawning tests.
  maxWorkers: 2,
  // A worker whose tests closed everything still takes 0.3–0.6 s to exit on a busy VM (V8 unmapping
  // a few hundred MB of heap); the default 0.5 s then force-kills it and warns of a leak that isn't.
  // A real leak never exits, so it is still reported.
  workerGracefulExitTimeout: 2_000,
};

export default config;
