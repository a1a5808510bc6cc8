import { createServer, connect, Server, Socket } from "node:net";
import { Code } from "@connectrpc/connect";
import type { Etcd3 } from "etcd3";
import { createEtcdClient } from "../etcd/client.js";
import { EtcdServer, startEtcd, waitFor } from "../infra/index.js";
import { InstanceInfo, instanceKey, parseInstance, servicePrefix } from "../registry/instance.js";
import { Discovery } from "./discovery.js";
import { ServiceWatcher, watchRegistry } from "./service-watcher.js";

function info(service: string, instance: string): InstanceInfo {
  return { service, instance, address: "127.0.0.1", port: 50051, protocols: ["grpc"], version: "1.0.0", startedAt: new Date(0).toISOString(), metadata: {} };
}

async function put(client: Etcd3, i: InstanceInfo): Promise<void> {
  await client.put(instanceKey(i.service, i.instance)).value(JSON.stringify(i));
}

async function freshRead(client: Etcd3, service: string): Promise<InstanceInfo[]> {
  const res = await client.getAll().prefix(servicePrefix(service)).exec();
  return res.kvs.map((kv) => parseInstance(kv.value.toString())).sort((a, b) => (a.instance < b.instance ? -1 : 1));
}

function matchesFreshRead(client: Etcd3, w: ServiceWatcher): () => Promise<boolean> {
  return async () => JSON.stringify(w.endpoints()) === JSON.stringify(await freshRead(client, w.service));
}

/**
 * A TCP forwarder in front of etcd that a test can cut: open connections are destroyed and new
 * ones refused, so one client loses etcd while another keeps writing (and compacting).
 */
class TcpGate {
  private readonly sockets = new Set<Socket>();
  private blocked = false;
  /** Port that new connections are forwarded to. */
  targetPort = 0;

  private constructor(
    private readonly server: Server,
    readonly endpoint: string,
  ) {}

  static async start(targetPort: number): Promise<TcpGate> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    const gate = new TcpGate(server, `http://127.0.0.1:${port}`);
    gate.targetPort = targetPort;
    server.on("connection", (inbound) => {
      if (gate.blocked) return void inbound.destroy();
      const outbound = connect(gate.targetPort, "127.0.0.1");
      for (const s of [inbound, outbound]) {
        gate.sockets.add(s);
        s.on("close", () => gate.sockets.delete(s));
        s.on("error", () => undefined);
      }
      inbound.on("close", () => outbound.destroy());
      outbound.on("close", () => inbound.destroy());
      inbound.pipe(outbound).pipe(inbound);
    });
    return gate;
  }

  cut(): void {
    this.blocked = true;
    for (const s of this.sockets) s.destroy();
  }

  open(): void {
    this.blocked = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

describe("ServiceWatcher against a real etcd", () => {
  let etcd: EtcdServer;
  let direct: Etcd3;
  let gate: TcpGate;
  let gated: Etcd3;

  beforeAll(async () => {
    etcd = await startEtcd();
    direct = createEtcdClient(etcd.endpoint);
    gate = await TcpGate.start(etcd.clientPort);
    gated = createEtcdClient(gate.endpoint);
  });

  afterAll(async () => {
    gated?.close();
    direct?.close();
    await gate?.close();
    await etcd?.stop();
  });

  it("reads existing instances, follows puts and deletes, and ignores (but counts) malformed values", async () => {
    await put(direct, info("follow", "a"));
    await direct.put(`${servicePrefix("follow")}bad`).value("not json");
    const w = new ServiceWatcher(direct, "follow");
    const changes: string[][] = [];
    w.on("change", (list) => changes.push(list.map((i) => i.instance)));
    await w.ready();
    expect(w.endpoints().map((i) => i.instance)).toEqual(["a"]);
    expect(w.malformed).toBe(1);

    await put(direct, info("follow", "b"));
    // A value whose instance does not match its key is malformed too.
    await direct.put(instanceKey("follow", "c")).value(JSON.stringify(info("follow", "other")));
    // Another service sharing the name as a prefix is not ours.
    await put(direct, info("follow-v2", "x"));
    await direct.delete().key(instanceKey("follow", "a"));
    await waitFor(() => w.endpoints().map((i) => i.instance).join() === "b", { what: "watcher to follow" });
    expect(w.malformed).toBe(2);
    // One change per watch response: events that arrive together (catch-up) make one change.
    expect(changes[0]).toEqual(["a"]);
    expect(changes[changes.length - 1]).toEqual(["b"]);
    expect(w.reads).toBe(1);
    await w.close();
  });

  it("serves the last endpoints while cut off from etcd, then replays what it missed from its revision", async () => {
    await put(direct, info("replay", "a"));
    await put(direct, info("replay", "b"));
    const w = new ServiceWatcher(gated, "replay");
    await w.ready();
    expect(w.endpoints().map((i) => i.instance)).toEqual(["a", "b"]);

    gate.cut();
    await direct.delete().key(instanceKey("replay", "a"));
    await put(direct, info("replay", "c"));
    await put(direct, { ...info("replay", "b"), version: "2.0.0" });
    expect(w.endpoints().map((i) => i.instance)).toEqual(["a", "b"]);

    gate.open();
    await waitFor(matchesFreshRead(direct, w), { what: "watcher to catch up" });
    expect(w.endpoints().map((i) => `${i.instance}@${i.version}`)).toEqual(["b@2.0.0", "c@1.0.0"]);
    // Caught up by replaying the watch from its revision, not by a second full read.
    expect(w.reads).toBe(1);
    await w.close();
  });

  it("re-reads when its revision was compacted while it was cut off", async () => {
    for (let i = 0; i < 5; i++) await put(direct, info("compact", `i${i}`));
    const w = new ServiceWatcher(gated, "compact");
    await w.ready();
    expect(w.endpoints()).toHaveLength(5);

    gate.cut();
    // Many revisions on and off the prefix, then compact them all away.
    for (let round = 0; round < 50; round++) {
      await put(direct, info("compact", `t${round % 7}`));
      await direct.put(`/elsewhere/${round}`).value("x");
      if (round % 3 === 0) await direct.delete().key(instanceKey("compact", `t${(round + 2) % 7}`));
    }
    await direct.delete().key(instanceKey("compact", "i0"));
    const { header } = await direct.get("/elsewhere/0").exec();
    await direct.kv.compact({ revision: header.revision, physical: true });

    gate.open();
    await waitFor(() => w.reads === 2, { what: "a re-read after compaction" });
    await waitFor(matchesFreshRead(direct, w), { what: "watcher to match a fresh read" });
    // And it keeps watching after the re-read.
    await put(direct, info("compact", "after"));
    await waitFor(() => w.endpoints().some((i) => i.instance === "after"), { what: "a put after the re-read" });
    expect(await matchesFreshRead(direct, w)()).toBe(true);
    await w.close();
  });

  it("re-reads when etcd comes back with its data reset (revision below the one it applied)", async () => {
    for (let i = 0; i < 10; i++) await put(direct, info("reset", `old${i}`));
    const w = new ServiceWatcher(gated, "reset");
    await w.ready();
    expect(w.endpoints()).toHaveLength(10);

    // A brand-new etcd behind the same address: its revisions start again from 1.
    const fresh = await startEtcd();
    const freshClient = createEtcdClient(fresh.endpoint);
    try {
      await put(freshClient, info("reset", "new"));
      gate.cut();
      gate.targetPort = fresh.clientPort;
      gate.open();
      await waitFor(() => w.reads === 2, { what: "a re-read after the revision went backwards" });
      await waitFor(matchesFreshRead(freshClient, w), { what: "watcher to match the new etcd" });
      expect(w.endpoints().map((i) => i.instance)).toEqual(["new"]);
      await w.close();
    } finally {
      gate.cut();
      gate.targetPort = etcd.clientPort;
      gate.open();
      freshClient.close();
      await fresh.stop();
    }
  });

  it("watchRegistry follows every service's instances with the same watcher, ignoring values that do not match their key", async () => {
    const w = watchRegistry(direct);
    await w.ready();
    await put(direct, info("reg-b", "1"));
    await put(direct, info("reg-a", "2"));
    await direct.put(instanceKey("reg-a", "3")).value(JSON.stringify(info("reg-other", "3")));
    const keys = () => w.values().filter((i) => i.service.startsWith("reg-")).map((i) => `${i.service}/${i.instance}`);
    await waitFor(() => keys().join() === "reg-a/2,reg-b/1", { what: "the registry watcher to see both services" });
    expect(w.malformed).toBeGreaterThanOrEqual(1);
    await direct.delete().key(instanceKey("reg-b", "1"));
    await waitFor(() => keys().join() === "reg-a/2", { what: "the registry watcher to follow a delete" });
    await w.close();
    // Closed before its first read: ready() rejects with Canceled instead of hanging.
    const early = watchRegistry(direct);
    await early.close();
    await expect(early.ready()).rejects.toMatchObject({ code: Code.Canceled });
  });

  it("Discovery shares one watcher per service and closes them all", async () => {
    const discovery = new Discovery(direct);
    const cart = discovery.watch("shared");
    expect(discovery.watch("shared")).toBe(cart);
    expect(discovery.watch("other")).not.toBe(cart);
    await cart.ready();
    await discovery.close();
    expect(discovery.watch("shared")).not.toBe(cart);
    await discovery.close();
  });
});
