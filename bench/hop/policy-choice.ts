/** Which call policy the Meshwork side of the hop bench uses: undefined = Mesh's default (every policy on), as services get it. */
import type { CallPolicy } from "../../mesh/client/index.js";

export const policy: ((service: string) => CallPolicy | undefined) | undefined = undefined;
