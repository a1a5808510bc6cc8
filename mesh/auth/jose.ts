/**
 * jose, pinned to 5.x: jose 6 is ESM-only, which jest's CommonJS module system cannot load on
 * Node 20; jose 5 ships CommonJS with the same API for what Meshwork uses.
 */
import * as jose from "jose";

export { jose };
