// Kept apart from up-command.ts so the CLI can print usage without loading the launcher.

/** A command-line mistake: the program prints it with the usage and exits 2. */
export class UsageError extends Error {}

export const UP_USAGE = `usage: meshwork up [options]        (npm start runs the same)

Starts etcd and NATS (data under .data/, kept between runs), every shop service and the
gateway, each a separate process; prints the instances and commands to try when all are ready.
Ctrl-C drains every service, then stops etcd and NATS.

options:
  --replicas LIST      replicas per service, e.g. catalog=2,inventory=2 (env MESHWORK_REPLICAS;
                       default catalog=2, one of each other service)
  --data-dir DIR       data directory (env MESHWORK_DATA_DIR; default ./.data)
  --gateway-port N     gateway port, 0 = any free one (env MESHWORK_GATEWAY_PORT; default 8080)
  --etcd-port N        port of the etcd started here (env MESHWORK_ETCD_PORT; default 2479)
  --nats-port N        port of the NATS started here (env MESHWORK_NATS_PORT; default 4322)
  --etcd URLS          use this etcd instead of starting one (env ETCD_ENDPOINTS)
  --nats URL           use this NATS instead of starting one (env NATS_URL)
  -h, --help           this text
`;
