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
};

export default config;
