import { createServer, type Server } from "node:net";
import { freePort, startOnFreePorts } from "./ports.js";

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** Binds 127.0.0.1:port like a child would; rejects with Node's EADDRINUSE error when it is taken. */
function bind(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(port, "127.0.0.1", () => (servers.push(s), resolve(s)));
  });
}

describe("startOnFreePorts", () => {
  it("picks again when another process took the picked port before the bind", async () => {
    const taken = await bind(0);
    const takenPort = (taken.address() as { port: number }).port;
    const picks: number[] = [];
    // The first pick returns a port that is already bound: the race freePort() cannot rule out.
    const pick = async () => (picks.length === 0 ? takenPort : await freePort());
    const s = await startOnFreePorts(false, pick, async (port) => {
      picks.push(port);
      return bind(port);
    });
    expect(picks).toHaveLength(2);
    expect((s.address() as { port: number }).port).toBe(picks[1]);
  });

  it("does not retry fixed ports or failures other than a taken port", async () => {
    const taken = await bind(0);
    const port = (taken.address() as { port: number }).port;
    let starts = 0;
    await expect(startOnFreePorts(true, async () => port, (p) => (starts++, bind(p)))).rejects.toThrow(/EADDRINUSE/);
    expect(starts).toBe(1);
    await expect(startOnFreePorts(false, freePort, async () => (starts++, Promise.reject(new Error("bad flag"))))).rejects.toThrow("bad flag");
    expect(starts).toBe(2);
  });

  it("gives up after three taken ports", async () => {
    const taken = await bind(0);
    const port = (taken.address() as { port: number }).port;
    let starts = 0;
    await expect(startOnFreePorts(false, async () => port, (p) => (starts++, bind(p)))).rejects.toThrow(/address already in use/);
    expect(starts).toBe(3);
  });
});
