/**
 * The console end to end: real etcd, three real traced service processes (catalog → inventory ×2),
 * the console on port 0, and Debian's Chromium driving the page. The trace waterfall of a real
 * checkout (and the README's screenshot) is proven against the whole local mesh in
 * tests/e2e/checkout-trace.test.ts.
 */
import { existsSync } from "node:fs";
import { get, type IncomingMessage } from "node:http";
import { join } from "node:path";
import type { Etcd3 } from "etcd3";
import { chromium, type Browser, type Page } from "playwright-core";
import { createEtcdClient } from "../mesh/etcd/client.js";
import { startEtcd, startProcess, tsxArgs, waitFor, type EtcdServer, type ManagedProcess } from "../mesh/infra/index.js";
import { instanceKey } from "../mesh/registry/index.js";
import { build, type ConsoleServer } from "./server.js";
import type { ConsoleState } from "./model.js";

const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
// The registry's minimum TTL (etcd's 2 s floor): a killed instance's key is gone within ~2 s.
const TTL_SECONDS = 2;
// 1 s polls keep the test short; the console's default is 2 s.
const POLL_MS = 1_000;
const fixture = join(__dirname, "fixtures/mesh-service.ts");

let etcd: EtcdServer;
let etcdClient: Etcd3;
let consoleServer: ConsoleServer;
let baseUrl: string;
let browser: Browser;
let page: Page;
const procs = new Map<string, ManagedProcess>();

function startService(service: "catalog" | "inventory", instance: string, env: Record<string, string> = {}): Promise<void> {
  const proc = startProcess(process.execPath, tsxArgs(fixture), {
    env: { ...process.env, ETCD_ENDPOINTS: etcd.endpoint, FIXTURE_SERVICE: service, MESHWORK_INSTANCE_ID: instance, MESHWORK_REGISTRY_TTL_SECONDS: String(TTL_SECONDS), ...env },
  });
  procs.set(instance, proc);
  return waitFor(
    () => {
      if (proc.proc.exitCode !== null) throw new Error(`${instance} exited: ${proc.output()}`);
      return /ready \d+/.test(proc.output());
    },
    { what: `${instance} ready`, timeoutMs: 30_000 },
  ).then(() => undefined);
}

async function getJson<T>(path: string): Promise<{ status: number; body: T }> {
  const res = await fetch(baseUrl + path);
  return { status: res.status, body: (await res.json()) as T };
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install it with 'apt-get install -y chromium' (scripts/ensure-infra.sh does with MESHWORK_WITH_BROWSER=1)`);
  etcd = await startEtcd();
  const launching = chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  await Promise.all([
    startService("catalog", "catalog-1"),
    startService("inventory", "inventory-1", { FIXTURE_OUTBOX_BACKLOG: "3", FIXTURE_DLQ_MESSAGES: "1", MESHWORK_VERSION: "1.4.0" }),
    startService("inventory", "inventory-2", { MESHWORK_VERSION: "1.4.0" }),
  ]);
  etcdClient = createEtcdClient(etcd.endpoint);
  consoleServer = build({ etcd: etcdClient, pollIntervalMs: POLL_MS, meshName: "test-mesh" });
  baseUrl = `http://127.0.0.1:${await consoleServer.listen(0)}`;
  browser = await launching;
  page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
  await page.goto(baseUrl);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await consoleServer?.close();
  etcdClient?.close();
  await Promise.all([...procs.values()].map((p) => p.kill()));
  await etcd?.stop();
});

test("lists every service with its instances, all SERVING", async () => {
  await page.waitForFunction(
    () => document.querySelectorAll('[data-testid="instance-row"][data-health="SERVING"]').length === 3,
    undefined,
    { timeout: 10_000 },
  );
  const services = await page.locator('[data-testid="service-card"]').evaluateAll((cards) =>
    cards.map((c) => ({
      name: c.getAttribute("data-service"),
      instances: [...c.querySelectorAll('[data-testid="instance-row"]')].map((r) => ({
        id: r.getAttribute("data-instance"),
        health: r.querySelector('[data-testid="health-badge"]')?.textContent,
        version: r.querySelector('[data-testid="instance-version"]')?.textContent,
      })),
    })),
  );
  expect(services).toEqual([
    { name: "catalog", instances: [{ id: "catalog-1", health: "SERVING", version: "0.1.0" }] },
    {
      name: "inventory",
      instances: [
        { id: "inventory-1", health: "SERVING", version: "1.4.0" },
        { id: "inventory-2", health: "SERVING", version: "1.4.0" },
      ],
    },
  ]);
  expect(await page.locator('[data-testid="mesh-name"]').textContent()).toBe("test-mesh");
  // The caller's client gauges and the outbox/DLQ gauges reach their panels.
  const client = page.locator('[data-testid="client-row"][data-instance="catalog-1"][data-target="inventory"]');
  await client.waitFor({ timeout: 5_000 });
  expect(await client.locator('[data-testid="breaker-state"]').textContent()).toBe("closed");
  await page.waitForFunction(
    () => document.querySelector('[data-testid="client-row"][data-target="inventory"] [data-testid="ejected-endpoints"]')?.textContent === "0 / 2",
    undefined,
    { timeout: 5_000 },
  );
  const events = page.locator('[data-testid="event-row"][data-instance="inventory-1"]');
  expect(await events.locator('[data-testid="outbox-backlog"]').textContent()).toBe("3");
  expect(await events.locator('[data-testid="dlq-messages"]').textContent()).toBe("1");

  const { body: state } = await getJson<ConsoleState>("/api/state");
  expect(state.services.map((s) => [s.name, s.instances.map((i) => i.health)])).toEqual([
    ["catalog", ["SERVING"]],
    ["inventory", ["SERVING", "SERVING"]],
  ]);
});

test("a SIGKILLed instance disappears from the page within the registry TTL", async () => {
  const gone = page.locator('[data-testid="instance-row"][data-instance="inventory-2"]');
  expect(await gone.count()).toBe(1);
  const killedAt = Date.now();
  await procs.get("inventory-2")!.kill();
  await gone.waitFor({ state: "detached", timeout: (TTL_SECONDS + 4) * 1_000 });
  const visibleAfterMs = Date.now() - killedAt;
  expect(visibleAfterMs).toBeLessThan((TTL_SECONDS + 4) * 1_000);
  expect(await page.locator('[data-testid="instance-row"][data-instance="inventory-1"]').count()).toBe(1);
  expect(await page.locator('[data-testid="service-card"][data-service="inventory"] [data-testid="instance-count"]').textContent()).toMatch(/^1 instance /);
});

test("registry text is rendered as text, never as markup", async () => {
  // A hand-written registry entry with markup in its version and no process behind it.
  const hostile = "<img src=x data-pwned=1>";
  const key = instanceKey("inventory", "inventory-x");
  await etcdClient.put(key).value(JSON.stringify({ service: "inventory", instance: "inventory-x", address: "127.0.0.1", port: 9, protocols: ["grpc"], version: hostile, startedAt: new Date().toISOString(), metadata: {} }));
  const row = page.locator('[data-testid="instance-row"][data-instance="inventory-x"]');
  await row.waitFor({ timeout: 5_000 });
  expect(await row.locator('[data-testid="instance-version"]').textContent()).toBe(hostile);
  expect(await page.locator("[data-pwned]").count()).toBe(0);
  // Nothing answers on port 9: the health check fails, the badge says UNKNOWN and tells why.
  await page.waitForFunction(
    () => {
      const badge = document.querySelector('[data-instance="inventory-x"] [data-testid="health-badge"]');
      return badge?.textContent === "UNKNOWN" && (badge.getAttribute("title") ?? "") !== "";
    },
    undefined,
    { timeout: 5_000 },
  );
  await etcdClient.delete().key(key);
  await row.waitFor({ state: "detached", timeout: 5_000 });
});

test("the event stream pushes state at once and after each poll, and ends when the console closes", async () => {
  const second = build({ etcd: etcdClient, pollIntervalMs: 200 });
  const url = `http://127.0.0.1:${await second.listen(0)}`;
  try {
    const res = await new Promise<IncomingMessage>((resolve, reject) => get(`${url}/api/events`, resolve).on("error", reject));
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^text\/event-stream/);
    let text = "";
    res.setEncoding("utf8");
    res.on("data", (c: string) => (text += c));
    const ended = new Promise<void>((resolve) => res.on("end", resolve));
    // The first state at once, then one per poll.
    await waitFor(() => (text.match(/^event: state$/gm) ?? []).length >= 3, { what: "three state events", timeoutMs: 5_000 });
    const first = JSON.parse(/^event: state\ndata: (.*)$/m.exec(text)![1]) as ConsoleState;
    expect(first.services.map((s) => s.name)).toEqual(["catalog", "inventory"]);
    expect(text).toMatch(/^event: traces$/m);

    const page = await fetch(url + "/");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toContain("default-src 'self'");
    expect(await page.text()).toContain('src="/console.js"');
    expect((await fetch(url + "/api/state", { method: "POST" })).status).toBe(405);
    expect((await fetch(url + "/../package.json")).status).toBe(404);
    expect((await fetch(url + "/api/nope")).status).toBe(404);
    expect((await fetch(`${url}/api/traces/${"0".repeat(32)}`)).status).toBe(404);
    expect((await fetch(url + "/api/traces/not-a-trace")).status).toBe(400);

    const started = Date.now();
    await second.close();
    await ended;
    // Closing does not wait for the viewer to go away.
    expect(Date.now() - started).toBeLessThan(2_000);
  } finally {
    await second.close();
  }
});
