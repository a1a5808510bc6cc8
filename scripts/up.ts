/**
 * `npm start`: the whole local mesh. Starts etcd and NATS JetStream with their data under .data/
 * (kept between runs) on 127.0.0.1:2479 and :4322, or reuses external ones given by
 * ETCD_ENDPOINTS / NATS_URL; then every shop service (replicas per MESHWORK_REPLICAS, e.g.
 * "catalog=2,inventory=2") and the gateway on :8080, each a separate supervised process. Prints
 * the instances and commands to try once everything is ready; Ctrl-C drains and stops it all.
 * `npm start -- --help` lists the options. `meshwork up` is the same program (scripts/local-mesh).
 */
import { upMain } from "./local-mesh/up-command.js";

const argv = process.argv.slice(2);
upMain(__filename, argv, argv).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`meshwork: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
