import { SingleFlightLoop } from "./single-flight.js";

describe("SingleFlightLoop", () => {
  it("never runs two steps at once; a request during a step makes exactly one more", async () => {
    let active = 0;
    let maxActive = 0;
    let steps = 0;
    let release!: () => void;
    const loop = new SingleFlightLoop(async () => {
      steps++;
      active++;
      maxActive = Math.max(maxActive, active);
      if (steps === 1) await new Promise<void>((r) => (release = r));
      active--;
    }, () => false);
    loop.request();
    loop.request();
    loop.request();
    release();
    await loop.settled();
    expect({ steps, maxActive }).toEqual({ steps: 2, maxActive: 1 });
  });

  it("repeats a step that throws until it succeeds, and stops when told", async () => {
    let calls = 0;
    const loop = new SingleFlightLoop(async () => {
      calls++;
      if (calls < 3) throw new Error("etcd unreachable");
    }, () => false);
    loop.request();
    await loop.settled();
    expect(calls).toBe(3);

    let stopped = false;
    let stopCalls = 0;
    const stopping = new SingleFlightLoop(async () => {
      stopCalls++;
      stopped = true;
      throw new Error("still failing");
    }, () => stopped);
    stopping.request();
    await stopping.settled();
    expect(stopCalls).toBe(1);
  });
});
