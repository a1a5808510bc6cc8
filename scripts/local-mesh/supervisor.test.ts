import { waitFor } from "../../mesh/infra/index.js";
import { formatLogLine } from "./log-format.js";
import { backoffDelay, DEFAULT_BACKOFF, Supervisor } from "./supervisor.js";

describe("restart backoff", () => {
  it("doubles from 250 ms and stops at the 10 s cap", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffDelay(DEFAULT_BACKOFF, n))).toEqual([250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
  });

  it("restarts a process that keeps crashing with growing delays", async () => {
    const lines: string[] = [];
    const starts: number[] = [];
    const sup = new Supervisor(
      { name: "crasher", command: process.execPath, args: ["-e", "process.exit(3)"], env: process.env, backoff: { initialMs: 100, factor: 2, maxMs: 400, resetAfterMs: 60_000 } },
      (l) => lines.push(l),
    );
    sup.onStart(() => starts.push(Date.now()));
    sup.start();
    await waitFor(() => starts.length >= 5, { timeoutMs: 20_000, what: "five starts" });
    const report = await sup.stop();
    const gaps = starts.slice(1, 5).map((t, i) => t - starts[i]);
    // Each gap is the process's own run (~50 ms) plus the delay: at least the delay.
    expect(gaps[0]).toBeGreaterThanOrEqual(100);
    expect(gaps[1]).toBeGreaterThanOrEqual(200);
    expect(gaps[2]).toBeGreaterThanOrEqual(400);
    expect(gaps[3]).toBeGreaterThanOrEqual(400);
    expect(lines.filter((l) => l.includes("exited with code 3")).map((l) => /restarting in (\d+) ms/.exec(l)?.[1])).toEqual(expect.arrayContaining(["100", "200", "400", "400"]));
    expect(report.starts).toBeGreaterThanOrEqual(5);
  });

  it("starts again from the initial delay after a run that lasted past resetAfterMs", async () => {
    const lines: string[] = [];
    const sup = new Supervisor(
      { name: "steady", command: process.execPath, args: ["-e", "setTimeout(() => process.exit(1), 300)"], env: process.env, backoff: { initialMs: 50, factor: 4, maxMs: 5_000, resetAfterMs: 200 } },
      (l) => lines.push(l),
    );
    sup.start();
    await waitFor(() => lines.filter((l) => l.includes("restarting")).length >= 3, { timeoutMs: 20_000, what: "three restarts" });
    await sup.stop();
    // Every run outlived resetAfterMs, so no crash counts as a repeat: always the first delay.
    expect(lines.filter((l) => l.includes("restarting")).slice(0, 3).every((l) => l.includes("restarting in 50 ms (crash 1)"))).toBe(true);
  });
});

describe("child log lines", () => {
  it("renders pino JSON lines as one readable line and leaves other lines alone", () => {
    expect(formatLogLine('{"level":30,"time":1,"pid":2,"hostname":"h","name":"orders","msg":"saga done","orderId":"o-1","err":{"message":"boom","stack":"..."}}')).toBe("INFO saga done orderId=o-1 err=boom");
    expect(formatLogLine('{"level":"warn","time":"2026-11-27T10:00:00.000Z","service":"orders","instance":"orders-1","msg":"slow","trace_id":"abc"}')).toBe("WARN slow trace_id=abc");
    expect(formatLogLine("[x] plain text")).toBe("[x] plain text");
    expect(formatLogLine("{not json")).toBe("{not json");
  });
});
