/**
 * The whole local mesh as `npm start` runs it (etcd, NATS, every shop service, the gateway; each a
 * separate process), on free ports with a temporary data dir: an order placed through the
 * gateway's REST route is confirmed, its notification arrives, a Ctrl-C-style stop drains every
 * process to exit code 0, and a second start on the same data dir still has the order.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mintDevToken } from "../../gateway/dev-token.js";
import { waitFor } from "../../mesh/infra/index.js";
import { startLocalMesh, type LocalMesh, type StopReport } from "../../scripts/local-mesh/launcher.js";

// Two starts (~20 s each on a loaded 2-core machine), the order and two drains: within the 90 s budget.
jest.setTimeout(90_000);

// Response bodies are checked field by field; a type per response would add nothing here.
type Json = Record<string, any>;

/** One HTTP/1.1 request without connection pooling (no socket outlives the test). */
function http(method: string, url: string, opts: { body?: unknown; token?: string } = {}): Promise<{ status: number; json: Json }> {
  return new Promise((resolve, reject) => {
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const headers: Record<string, string> = {};
    if (body !== undefined) headers["content-type"] = "application/json";
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    const req = request(url, { method, headers, agent: false, timeout: 10_000 }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => {
        try {
          resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Json });
        } catch {
          reject(new Error(`${method} ${url}: ${res.statusCode} with a body that is not JSON: ${text.slice(0, 200)}`));
        }
      });
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on("error", reject);
    req.end(body);
  });
}

describe("local mesh end to end", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "meshwork-e2e-"));
  const lines: string[] = [];
  let mesh: LocalMesh | undefined;
  let report: StopReport | undefined;
  let finished = false;

  afterAll(async () => {
    // The processes' own lines are the way to see why a run failed.
    if (!finished) process.stderr.write(`--- launcher log (last 150 lines) ---\n${lines.slice(-150).join("\n")}\n`);
    if (mesh && !report) await mesh.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("starts everything, confirms an order placed through the gateway, notifies the customer, and stops with exit 0 everywhere", async () => {
    mesh = await startLocalMesh({ dataDir, ports: { etcd: 0, nats: 0, gateway: 0, console: 0 }, log: (l) => lines.push(l) });
    const gw = mesh.gatewayUrl!;
    expect(mesh.services.map((s) => s.instance)).toEqual(["catalog-1", "catalog-2", "inventory-1", "notifications-1", "orders-1", "payments-1", "gateway"]);

    // The banner's first two commands: REST and Connect JSON to the catalog through the gateway.
    const rest = await http("GET", `${gw}/v1/products?page_size=2`);
    expect(rest.status).toBe(200);
    expect(rest.json.products).toHaveLength(2);
    const connect = await http("POST", `${gw}/catalog.v1.CatalogService/ListProducts`, { body: { pageSize: 2 } });
    expect(connect).toEqual({ status: 200, json: rest.json });

    const customer = `cust-${randomUUID().slice(0, 8)}`;
    const token = await mintDevToken({ secret: mesh.jwtSecret, subject: customer, scopes: ["orders:read", "orders:write", "notifications:read"] });
    const placed = await http("POST", `${gw}/v1/orders`, {
      token,
      body: { idempotencyKey: randomUUID(), customerId: customer, items: [{ productId: "prod-001", quantity: 1 }], currencyCode: "EUR", cardNumber: "4242424242424242" },
    });
    expect(placed.status).toBe(200);
    const orderId = placed.json.order.id as string;
    expect(placed.json.order).toEqual(expect.objectContaining({ customerId: customer, total: { currencyCode: "EUR", amountMinor: "5900" } }));

    const confirmed = await waitFor(
      async () => {
        const r = await http("GET", `${gw}/v1/orders/${orderId}`, { token });
        return r.status === 200 && r.json.order.status === "ORDER_STATUS_CONFIRMED" ? r.json.order : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: `order ${orderId} CONFIRMED` },
    );
    expect(confirmed.paymentId).not.toBe("");

    const notification = await waitFor(
      async () => {
        const r = await http("GET", `${gw}/v1/customers/${customer}/notifications`, { token });
        return (r.json.notifications as Json[] | undefined)?.find((n) => n.orderId === orderId && n.kind === "NOTIFICATION_KIND_ORDER_CONFIRMED");
      },
      { timeoutMs: 20_000, intervalMs: 200, what: `the ORDER_CONFIRMED notification of ${orderId}` },
    );
    expect(notification).toEqual(expect.objectContaining({ customerId: customer, title: expect.any(String) }));

    // The console sees every shop service through etcd, each instance SERVING by its health check.
    const consoleServices = await waitFor(
      async () => {
        const r = await http("GET", `${mesh!.consoleUrl}/api/state`);
        const services = ((r.json?.services ?? []) as Json[]).map((svc) => ({
          name: svc.name as string,
          healthy: (svc.instances as Json[]).length > 0 && (svc.instances as Json[]).every((i) => i.health === "SERVING"),
        }));
        const names = services.map((svc) => svc.name).sort();
        const all = ["catalog", "inventory", "notifications", "orders", "payments"];
        return all.every((n) => names.includes(n)) && services.every((svc) => svc.healthy) ? names : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: "the console showing every service SERVING" },
    );
    expect(consoleServices).toEqual(expect.arrayContaining(["catalog", "inventory", "notifications", "orders", "payments"]));

    report = await mesh.stop();
    expect(report.processes.map((p) => ({ name: p.name, code: p.code, killed: p.killed })).sort((a, b) => a.name.localeCompare(b.name))).toEqual(
      ["catalog-1", "catalog-2", "console", "gateway", "inventory-1", "notifications-1", "orders-1", "payments-1"].map((name) => ({ name, code: 0, killed: false })),
    );
    expect(report.clean).toBe(true);
    // Every process started once: nothing crashed and was restarted along the way.
    expect(report.processes.every((p) => p.starts === 1)).toBe(true);

    // A second start on the same data dir keeps the data (SQLite files, etcd, NATS) and the
    // development keys: the order is still there and the same token still works.
    report = undefined;
    mesh = await startLocalMesh({ dataDir, ports: { etcd: 0, nats: 0, gateway: 0, console: 0 }, log: (l) => lines.push(l) });
    const again = await http("GET", `${mesh.gatewayUrl}/v1/orders/${orderId}`, { token });
    expect(again).toEqual({ status: 200, json: { order: expect.objectContaining({ id: orderId, status: "ORDER_STATUS_CONFIRMED" }) } });
    report = await mesh.stop();
    expect(report.clean).toBe(true);
    finished = true;
  });
});
