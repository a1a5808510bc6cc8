import { Etcd3 } from "etcd3";
import { connect, StringCodec } from "nats";
import { Client } from "pg";
import { existsSync } from "node:fs";
import { startEtcdCluster } from "./etcd.js";
import { createTestDatabase, postgresAvailable, startEtcd, startNats } from "./index.js";

describe("etcd harness", () => {
  it("starts a real etcd, serves put/watch, survives a restart, and cleans up its data dir", async () => {
    const etcd = await startEtcd();
    const client = new Etcd3({ hosts: etcd.endpoint });
    try {
      const watcher = await client.watch().key("/harness/k").create();
      const seen = new Promise<string>((resolve) => watcher.on("put", (kv) => resolve(kv.value.toString())));
      await client.put("/harness/k").value("v1");
      expect(await seen).toBe("v1");
      await watcher.cancel();

      await etcd.restart();
      expect(await client.get("/harness/k").string()).toBe("v1");
    } finally {
      client.close();
      await etcd.stop();
    }
    expect(existsSync(etcd.dataDir)).toBe(false);
  });
});

describe("etcd cluster harness", () => {
  it("starts three members that agree on one leader and replicate a write", async () => {
    const cluster = await startEtcdCluster();
    const clients = cluster.endpoints.map((hosts) => new Etcd3({ hosts }));
    try {
      const leader = await cluster.leader();
      expect(cluster.members).toContain(leader);
      await clients[0].put("/harness/c").value("v");
      expect(await Promise.all(clients.map((c) => c.get("/harness/c").serializable(false).string()))).toEqual(["v", "v", "v"]);
    } finally {
      for (const c of clients) c.close();
      await cluster.stop();
    }
  });
});

describe("NATS JetStream harness", () => {
  it("starts a real nats-server with JetStream and round-trips a persisted message", async () => {
    const nats = await startNats();
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await nc.jetstreamManager();
      await jsm.streams.add({ name: "HARNESS", subjects: ["harness.>"] });
      const js = nc.jetstream();
      const sc = StringCodec();
      const ack = await js.publish("harness.one", sc.encode("hello"), { msgID: "id-1" });
      expect(ack.seq).toBe(1);
      const dup = await js.publish("harness.one", sc.encode("hello"), { msgID: "id-1" });
      expect(dup.duplicate).toBe(true);
      const msg = await jsm.streams.getMessage("HARNESS", { seq: 1 });
      expect(sc.decode(msg.data)).toBe("hello");
    } finally {
      await nc.close();
      await nats.stop();
    }
    expect(existsSync(nats.storeDir)).toBe(false);
  });
});

describe("PostgreSQL test databases", () => {
  it("creates and drops an isolated database on the local server", async () => {
    if (!(await postgresAvailable())) {
      // CI machines run PostgreSQL on 127.0.0.1:5432; elsewhere set MESHWORK_TEST_PG_URL.
      throw new Error("PostgreSQL is not reachable at the test URL (set MESHWORK_TEST_PG_URL)");
    }
    const db = await createTestDatabase();
    const c = new Client({ connectionString: db.url });
    await c.connect();
    try {
      const r = await c.query<{ db: string }>("select current_database() as db");
      expect(r.rows[0].db).toBe(db.name);
    } finally {
      await c.end();
      await db.drop();
    }
  });
});
