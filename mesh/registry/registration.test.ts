import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Etcd3, Lease } from "etcd3";
import { ServiceWatcher } from "../discovery/service-watcher.js";
import { createEtcdClient } from "../etcd/client.js";
import { EtcdServer, freePort, ManagedProcess, startEtcd, startProcess, waitFor } from "../infra/index.js";
import { InstanceInfo, instanceKey, parseInstance, servicePrefix } from "./instance.js";
import { Registration } from "./registration.js";

function info(service: string, instance: string, port = 50051): InstanceInfo {
  return { service, instance, address: "127.0.0.1", port, protocols: ["grpc"], version: "1.0.0", startedAt: new Date(0).toISOString(), metadata: { build: "test" } };
}

function codeOf(fn: () => unknown): Code | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof ConnectError ? e.code : undefined;
  }
  return undefined;
}

async function freshRead(client: Etcd3, service: string): Promise<InstanceInfo[]> {
  const res = await client.getAll().prefix(servicePrefix(service)).exec();
  return res.kvs.map((kv) => parseInstance(kv.value.toString())).sort((a, b) => (a.instance < b.instance ? -1 : 1));
}

describe("instance info", () => {
  it("round-trips through JSON, drops unknown fields, and keeps zone", () => {
    const i = { ...info("cart", "cart-1"), zone: "z1" };
    expect(parseInstance(JSON.stringify({ ...i, extra: 1 }))).toStrictEqual(i);
    expect(instanceKey("cart", "cart-1")).toBe("/meshwork/services/cart/cart-1");
  });

  it("rejects bad values and key segments with InvalidArgument", () => {
    const good = info("cart", "cart-1");
    expect(codeOf(() => parseInstance("{"))).toBe(Code.InvalidArgument);
    expect(codeOf(() => parseInstance("[]"))).toBe(Code.InvalidArgument);
    expect(codeOf(() => parseInstance({ ...good, port: 0 }))).toBe(Code.InvalidArgument);
    expect(codeOf(() => parseInstance({ ...good, port: 1.5 }))).toBe(Code.InvalidArgument);
    expect(codeOf(() => parseInstance({ ...good, protocols: [] }))).toBe(Code.InvalidArgument);
    expect(codeOf(() => parseInstance({ ...good, address: "" }))).toBe(Code.InvalidArgument);
    expect(codeOf(() => parseInstance({ ...good, startedAt: "yesterday" }))).toBe(Code.InvalidArgument);
    expect(codeOf(() => parseInstance({ ...good, metadata: { n: 1 } }))).toBe(Code.InvalidArgument);
    expect(codeOf(() => parseInstance({ ...good, instance: "a/b" }))).toBe(Code.InvalidArgument);
    expect(codeOf(() => instanceKey("cart", "../x"))).toBe(Code.InvalidArgument);
  });

  it("refuses a TTL below etcd's 2 s minimum", async () => {
    const client = createEtcdClient(`http://127.0.0.1:${await freePort()}`);
    try {
      expect(codeOf(() => new Registration(client, info("cart", "c1"), { ttlSeconds: 1 }))).toBe(Code.InvalidArgument);
    } finally {
      client.close();
    }
  });

  it("rejects whenRegistered() with Canceled when closed before etcd was ever reached", async () => {
    // Nothing listens on this port: every attempt fails and is retried until close().
    const client = createEtcdClient(`http://127.0.0.1:${await freePort()}`);
    const attempts = jest.spyOn(client, "lease");
    const reg = new Registration(client, info("cart", "c1"), { ttlSeconds: 2 });
    try {
      await waitFor(() => attempts.mock.calls.length >= 2, { what: "a retried attempt" });
      await reg.close();
      await expect(reg.whenRegistered()).rejects.toMatchObject({ code: Code.Canceled });
      expect(reg.isRegistered()).toBe(false);
    } finally {
      client.close();
    }
  });
});

describe("Registration against a real etcd", () => {
  let etcd: EtcdServer;
  let client: Etcd3;
  const children: ManagedProcess[] = [];

  beforeAll(async () => {
    etcd = await startEtcd();
    client = createEtcdClient(etcd.endpoint);
  });

  afterAll(async () => {
    await Promise.all(children.map((c) => c.kill()));
    client?.close();
    await etcd?.stop();
  });

  it("writes the JSON value under its key, a watcher sees it come and go, deregister() removes it at once", async () => {
    const watcher = new ServiceWatcher(client, "basic");
    const changes: string[][] = [];
    watcher.on("change", (list) => changes.push(list.map((i) => i.instance)));
    await watcher.ready();
    expect(watcher.endpoints()).toEqual([]);

    const reg = new Registration(client, info("basic", "b1"), { ttlSeconds: 2 });
    const registered = jest.fn();
    reg.on("registered", registered);
    await reg.whenRegistered();
    expect(reg.isRegistered()).toBe(true);
    expect(registered).toHaveBeenCalledWith(1);
    expect(reg.key).toBe("/meshwork/services/basic/b1");
    expect(JSON.parse((await client.get(reg.key).string())!)).toStrictEqual(info("basic", "b1"));
    await waitFor(() => watcher.endpoints().length === 1, { what: "watcher to see b1" });
    expect(watcher.endpoints()).toStrictEqual([info("basic", "b1")]);

    const t0 = Date.now();
    await reg.deregister();
    // Revoking the lease deletes the key in the same request: no TTL wait.
    expect(await client.get(reg.key).string()).toBeNull();
    expect(Date.now() - t0).toBeLessThan(1_000);
    expect(reg.isRegistered()).toBe(false);
    await waitFor(() => watcher.endpoints().length === 0, { what: "watcher to see b1 go" });
    expect(changes).toEqual([["b1"], []]);
    await watcher.close();
  });

  it("kill -9 of the holder: the key is gone within TTL + 1 s and the watcher drops it", async () => {
    const ttlSeconds = 2;
    const key = instanceKey("killed", "k1");
    // `node --import tsx`, not the tsx CLI: the CLI runs the script in a grandchild that a
    // SIGKILL of the CLI leaves running (and registered).
    const child = startProcess(process.execPath, ["--import", pathToFileURL(require.resolve("tsx")).href, join(__dirname, "fixtures", "register-instance.ts"), etcd.endpoint, "killed", "k1", String(ttlSeconds)]);
    children.push(child);
    await waitFor(() => child.output().includes("registered"), { what: `fixture to register:\n${child.output()}` });
    const watcher = new ServiceWatcher(client, "killed");
    await watcher.ready();
    expect(watcher.endpoints().map((i) => i.instance)).toEqual(["k1"]);

    const t0 = Date.now();
    await child.kill();
    await waitFor(async () => (await client.get(key).string()) === null, { timeoutMs: 10_000, what: "the key to expire" });
    const goneAfterMs = Date.now() - t0;
    expect(goneAfterMs).toBeLessThanOrEqual(ttlSeconds * 1000 + 1000);
    await waitFor(() => watcher.endpoints().length === 0, { timeoutMs: 2_000, what: "watcher to drop k1" });
    await watcher.close();
  });

  it("single-flight: bursts of lost leases and a server-side revoke give one attempt at a time and one live lease", async () => {
    const leases: Lease[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    let onNewLease: ((l: Lease) => void) | undefined;
    const realLease = client.lease.bind(client);
    // Counts an attempt from lease creation until its put settles.
    const spy = jest.spyOn(client, "lease").mockImplementation((ttl, opts) => {
      const l = realLease(ttl, opts);
      leases.push(l);
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const realPut = l.put.bind(l);
      l.put = (key) => {
        const b = realPut(key);
        const realExec = b.exec.bind(b);
        b.exec = () => realExec().finally(() => (inFlight -= 1));
        return b;
      };
      const hook = onNewLease;
      onNewLease = undefined;
      hook?.(l);
      return l;
    });
    const reg = new Registration(client, info("flight", "f1"), { ttlSeconds: 2 });
    const lost = jest.fn();
    reg.on("lost", lost);
    try {
      await reg.whenRegistered();

      // 20 `lost` events on the registered lease in one tick: one re-registration.
      for (let i = 0; i < 20; i++) leases[0].emit("lost", new Error("test"));
      await waitFor(() => reg.registrations === 2 && inFlight === 0, { what: "one re-registration" });
      expect(leases).toHaveLength(2);
      expect(lost).toHaveBeenCalledTimes(1);

      // etcd revokes the lease (keepalive answers TTL 0), and while the replacement is in flight
      // it is reported lost 10 more times: exactly one follow-up attempt, never two at once.
      onNewLease = (l) => setImmediate(() => {
        for (let i = 0; i < 10; i++) l.emit("lost", new Error("test"));
      });
      await client.leaseClient.leaseRevoke({ ID: await leases[1].grant() });
      await waitFor(() => leases.length >= 3, { what: "a re-registration after the revoke" });
      await waitFor(() => reg.isRegistered() && inFlight === 0 && reg.registrations === leases.length, { what: "registration to settle" });
      expect(leases).toHaveLength(4);
      expect(maxInFlight).toBe(1);

      const current = await leases[leases.length - 1].grant();
      const res = await client.getAll().prefix(servicePrefix("flight")).exec();
      expect(res.kvs).toHaveLength(1);
      expect(res.kvs[0].lease).toBe(current);
      // Replaced leases are revoked in the background: only the current one stays alive.
      await waitFor(
        async () => {
          const ttls = await Promise.all(leases.map(async (l) => Number((await client.leaseClient.leaseTimeToLive({ ID: await l.grant() })).TTL)));
          return ttls.filter((t) => t > 0).length === 1;
        },
        { what: "replaced leases to be revoked" },
      );
    } finally {
      spy.mockRestore();
      await reg.deregister();
    }
  });
});

describe("Registration across an etcd outage longer than the TTL", () => {
  it("re-registers once etcd is back (one key, one lease) while a watcher serves the last endpoints and then resumes", async () => {
    const etcd = await startEtcd();
    const regClient = createEtcdClient(etcd.endpoint);
    const watchClient = createEtcdClient(etcd.endpoint);
    const reg = new Registration(regClient, info("outage", "o1"), { ttlSeconds: 2 });
    const watcher = new ServiceWatcher(watchClient, "outage");
    try {
      await reg.whenRegistered();
      await watcher.ready();
      await waitFor(() => watcher.endpoints().length === 1, { what: "watcher to see o1" });
      let lostAt = 0;
      reg.on("lost", () => (lostAt = Date.now()));

      await etcd.kill();
      const downAt = Date.now();
      await waitFor(() => lostAt > 0, { timeoutMs: 10_000, what: "the lease to be reported lost" });
      expect(lostAt - downAt).toBeGreaterThan(2_000);
      expect(reg.isRegistered()).toBe(false);
      // Last known endpoints keep serving while etcd is down.
      expect(watcher.endpoints().map((i) => i.instance)).toEqual(["o1"]);

      await etcd.restart();
      await waitFor(() => reg.registrations === 2 && reg.isRegistered(), { timeoutMs: 15_000, what: "re-registration" });
      const fresh = await freshRead(regClient, "outage");
      expect(fresh).toStrictEqual([info("outage", "o1")]);
      // The lease re-armed by the restart is revoked: exactly one lease remains.
      await waitFor(async () => (await regClient.leaseClient.leaseLeases()).leases.length === 1, { what: "one lease" });

      await waitFor(async () => JSON.stringify(watcher.endpoints()) === JSON.stringify(await freshRead(watchClient, "outage")), { what: "watcher to match a fresh read" });
      // Resumed from its revision: no second full read was needed.
      expect(watcher.reads).toBe(1);
    } finally {
      await watcher.close();
      await reg.close();
      regClient.close();
      watchClient.close();
      await etcd.stop();
    }
  });
});
