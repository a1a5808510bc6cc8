/** Which call policy the Meshwork side of the hop bench uses (BENCH_POLICY=none|all). */
import type { CallPolicy } from "../../mesh/client/index.js";

export const policy: ((service: string) => CallPolicy | undefined) | undefined = undefined;
