import { createRegistry, type DescFile, type DescMethod, type DescService, type Registry } from "@bufbuild/protobuf";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

/** The generated code of this checkout. */
export const GEN_DIR = join(__dirname, "..", "..", "gen");

/**
 * Every file descriptor generated under `genDir` (`*_pb.ts`), loaded by walking the folder, so a
 * new contract is callable without touching the CLI.
 */
export function loadGeneratedFiles(genDir: string = GEN_DIR): DescFile[] {
  const files: DescFile[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (/_pb\.(ts|js)$/.test(name) && !name.endsWith(".d.ts")) {
        // require: the module list is known only at run time.
        const mod = require(p) as Record<string, unknown>;
        for (const v of Object.values(mod)) if (isFile(v)) files.push(v);
      }
    }
  };
  walk(genDir);
  return files;
}

function isFile(v: unknown): v is DescFile {
  return typeof v === "object" && v !== null && (v as { kind?: unknown }).kind === "file" && Array.isArray((v as DescFile).services);
}

/** A registry of every generated type (for JSON of `Any` and error details) and the services in it. */
export interface Contracts {
  registry: Registry;
  services: DescService[];
}

/** Builds {@link Contracts} from the generated files. */
export function loadContracts(genDir: string = GEN_DIR): Contracts {
  const files = loadGeneratedFiles(genDir);
  return { registry: createRegistry(...files), services: files.flatMap((f) => f.services) };
}

/** Why a method name did not resolve; the message lists what would have. */
export class MethodLookupError extends Error {}

/**
 * Finds a method by `package.Service/Method` or `Service/Method` (a leading "/" and a "." instead
 * of the "/" are accepted too, as grpcurl and buf curl write them).
 */
export function findMethod(services: readonly DescService[], name: string): DescMethod {
  const text = name.replace(/^\//, "");
  const cut = text.includes("/") ? text.lastIndexOf("/") : text.lastIndexOf(".");
  if (cut <= 0 || cut === text.length - 1) throw new MethodLookupError(`'${name}' must look like package.Service/Method or Service/Method`);
  const svc = text.slice(0, cut);
  const method = text.slice(cut + 1);
  const candidates = services.filter((s) => s.typeName === svc || s.name === svc);
  if (candidates.length === 0) {
    throw new MethodLookupError(`no service '${svc}'; known: ${services.map((s) => s.typeName).sort().join(", ")}`);
  }
  if (candidates.length > 1) {
    throw new MethodLookupError(`'${svc}' is ambiguous: ${candidates.map((s) => s.typeName).join(", ")}; use the full name`);
  }
  const found = candidates[0].methods.find((m) => m.name === method);
  if (!found) throw new MethodLookupError(`${candidates[0].typeName} has no method '${method}'; it has: ${candidates[0].methods.map((m) => m.name).join(", ")}`);
  return found;
}
